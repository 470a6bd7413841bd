"""Operator and transformer semantics, after the examples in Falco's condition docs."""

from __future__ import annotations

import pytest
from rules_helpers import cond_engine, matches

E = {"evt.type": "open", "proc.name": "Bash", "fd.name": "/var/spool/maillog", "proc.cmdline": "java -jar x.jar",
     "evt.arg.flags": "O_WRONLY|O_TRUNC", "fd.sport": 443, "user.uid": 1000, "proc.pname": "bash",
     "proc.exepath": "/usr/bin/cat", "evt.buffer": b"\xca\xfe\xba\xbe\x00\x01", "fd.sip": "10.1.2.3",
     "fd.cip": "127.0.0.1", "proc.aname": ["Bash", "sshd", "systemd"], "fd.types": ["ipv4", "file"],
     "proc.args": "-V", "k8s.pod.labels": {"app": "web"}, "proc.env": "HTTP_PROXY=x HOME=/root"}

CASES = [
    ("proc.name = Bash", True), ("proc.name == Bash", True), ("proc.name = bash", False),
    ("proc.name != bash", True), ("user.uid < 1001", True), ("user.uid <= 1000", True), ("user.uid > 1000", False),
    ("user.uid >= 1000", True), ("fd.sport = \"443\"", True), ("fd.sport in (80, 443)", True),
    ("proc.cmdline contains \"-jar\"", True), ("evt.arg.flags contains O_TRUNC", True),
    ("evt.arg.flags contains O_CREAT", False), ("proc.name icontains BASH", True), ("proc.name contains bash", False),
    ("evt.buffer bcontains CAFEBABE", True), ("evt.buffer bcontains cafebabf", False),
    ("evt.buffer bstartswith CAFE", True), ("evt.buffer bstartswith BABE", False),
    ("proc.cmdline startswith java", True), ("proc.cmdline endswith .jar", True), ("proc.cmdline endswith java", False),
    ("proc.name exists", True), ("k8s.pod.name exists", False), ("not k8s.pod.name exists", True),
    ("fd.name glob '/var/*/maillog'", True), ("fd.name glob '/var/*'", True),  # fnmatch, no FNM_PATHNAME
    ("fd.name glob '/var/*/mail???'", True),
    ("fd.name pmatch (/var/run, /var/spool, /etc, /boot)", True), ("fd.name pmatch (/opt)", False),
    ("fd.name pmatch (/var/spo)", False), ("fd.name pmatch (/var/*)", True),
    ("proc.name in (Bash, sh)", True), ("proc.name in (sh, zsh)", False),
    ("fd.types in (ipv4, file, unix)", True), ("fd.types in (ipv4)", False),
    ("fd.types intersects (ipv4, unix)", True), ("fd.types intersects (unix, pipe)", False),
    ("proc.args intersects (\"-V\", \"-l\")", True),
    ("fd.name regex '/var/spool/[a-z]+'", True), ("fd.name regex 'spool'", False),
    ("tolower(proc.name) = bash", True), ("toupper(proc.name) = BASH", True),
    ("basename(proc.exepath) = cat", True), ("len(proc.name) = 4", True), ("len(proc.name) > 4", False),
    ("len(fd.types) = 2", True),
    ("proc.name = val(proc.pname)", False), ("tolower(proc.name) = tolower(val(proc.pname))", True),
    ("proc.aname = sshd", True), ("proc.aname[2] = systemd", True), ("proc.aname[1] = systemd", False),
    ("proc.aname[0] = Bash", True), ("proc.aname in (systemd)", True),
    ("fd.snet in (\"10.0.0.0/8\", \"192.168.0.0/16\")", True), ("fd.net = 127.0.0.0/8", True),
    ("fd.ip = 10.1.2.3", True), ("fd.ip = 10.9.9.9", False),
    ("k8s.pod.label[app] = web", True), ("k8s.pod.label[tier] = web", False), ("proc.env[HOME] = /root", True),
    ("proc.env icontains http_proxy", True),
    # a missing field: every comparison is false, not only equality
    ("k8s.ns.name = x", False), ("k8s.ns.name != x", False), ("not k8s.ns.name = x", True),
    ("k8s.ns.name startswith x", False), ("proc.tty != 0", False),
    # precedence: and binds tighter than or; not applies to the next term
    ("proc.name = x or proc.name = Bash and user.uid = 1000", True),
    ("(proc.name = x or proc.name = Bash) and user.uid = 1", False),
    ("not proc.name = x and not proc.name = y", True),
    ("evt.type = open and evt.dir = <", True), ("evt.dir = >", False),
]


@pytest.mark.parametrize(("condition", "expected"), CASES)
def test_operator_semantics(tmp_path, condition, expected):
    engine = cond_engine(tmp_path, condition)
    assert matches(engine, dict(E)) is expected, condition


def test_b64_transformer(tmp_path):
    engine = cond_engine(tmp_path, "b64(proc.cmdline) = 'curl x'")
    assert matches(engine, {"proc.cmdline": "Y3VybCB4"})
    assert not matches(engine, {"proc.cmdline": "Y3VybCB5"})


def test_lists_nest_and_quoted_items(tmp_path):
    extra = """
- list: inner
  items: [sh, '"bash"']
- list: outer
  items: [inner, zsh]
"""
    engine = cond_engine(tmp_path, "proc.name in (outer)", extra)
    assert matches(engine, {"proc.name": "bash"})
    assert matches(engine, {"proc.name": "sh"})
    assert not matches(engine, {"proc.name": "inner"})


def test_macros_and_quoted_list_name_is_a_string(tmp_path):
    extra = """
- list: shells
  items: [sh]
- macro: is_shell
  condition: proc.name in (shells)
"""
    assert matches(cond_engine(tmp_path, "is_shell", extra), {"proc.name": "sh"})
    assert matches(cond_engine(tmp_path, "proc.name in ('shells')", extra), {"proc.name": "shells"})


def test_numeric_values_given_as_strings_still_compare(tmp_path):
    engine = cond_engine(tmp_path, "fd.sport = 443 and proc.name contains ba")
    assert matches(engine, {"fd.sport": "443", "proc.name": "bash"})
    # a wrong-typed string field (an int) does not crash the engine
    assert not matches(engine, {"fd.sport": 443, "proc.name": 12})


def test_derived_fields(tmp_path):
    engine = cond_engine(tmp_path, "fd.directory = /etc and fd.filename = shadow and fd.typechar = f"
                                   " and evt.is_open_write = true")
    assert matches(engine, {"evt.type": "openat", "fd.name": "/etc/shadow", "fd.type": "file",
                            "evt.arg.flags": "O_RDWR|O_CREAT"})
    assert matches(engine, {"evt.type": "openat", "fd.name": "/etc/shadow", "fd.type": "file",
                            "evt.arg.flags": 0o1})  # O_WRONLY as a number
    assert not matches(engine, {"evt.type": "openat", "fd.name": "/etc/shadow", "fd.type": "file",
                                "evt.arg.flags": "O_RDONLY"})
    res = cond_engine(tmp_path, "evt.res = ENOENT and evt.rawres < 0")
    assert matches(res, {"evt.rawres": -2})
    assert matches(res, {"evt.res": "ENOENT"})
    assert not matches(res, {"evt.rawres": 3})


def test_field_table_declares_each_field_once():
    """proc.pid.ts was declared string and int (the later silently won); a second declaration now raises."""
    from kubeguard.rules import falco_fields as fields

    assert fields.field_type(fields.FieldRef("proc.pid.ts", None)) == fields.INT
    with pytest.raises(ValueError, match=r"proc\.name declared twice"):
        fields._add(fields.INT, "proc.name")
    assert fields.field_type(fields.FieldRef("proc.name", None)) == fields.STR
