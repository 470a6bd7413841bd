"""Script rules in the WorkloadPolicy document: parsed with file:line errors, exported only when present
(older exports load and dump unchanged), merged with user rules winning, accepted by the CRD schema."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from kubeguard.policy.document import PolicyError, ScriptRule, merge, parse_documents
from kubeguard.policy.execguard import GuardedCgroup, direct_scripts, map_keys_max, pack_key, plan_entries, program
from kubeguard.policy.scripts import c_is_code, env_code, runs_scripts, script_of, script_of_argv

REPO = Path(__file__).resolve().parents[2]
WITH_SCRIPTS = """\
apiVersion: kubeguard.io/v1alpha1
kind: WorkloadPolicy
metadata: {name: deployment-web, namespace: shop}
spec:
  workload: {kind: Deployment, name: web}
  mode: protect
  processes:
    - {path: /bin/sh}
  scripts:
    - {path: /app/entrypoint.sh, interpreters: [/bin/sh]}
    - {path: "/app/jobs/*.py"}
    - {path: /app/jobs/evil.py, action: deny}
"""


def test_script_rules_parse_decide_and_round_trip() -> None:
    (policy,) = parse_documents(WITH_SCRIPTS, "p.yaml")
    assert policy.scripts[0] == ScriptRule("/app/entrypoint.sh", interpreters=("/bin/sh",))
    assert policy.script_allowed("/app/entrypoint.sh") and policy.script_allowed("/app/jobs/report.py")
    assert not policy.script_allowed("/app/jobs/evil.py") and not policy.script_allowed("/tmp/new.sh")
    assert "script deny /app/jobs/evil.py" in policy.rule_keys()
    (again,) = parse_documents(yaml.safe_dump(policy.to_document(), sort_keys=False), "again.yaml")
    assert again.scripts == sorted(policy.scripts, key=lambda r: r.path)


def test_a_policy_without_scripts_exports_as_before() -> None:
    old = WITH_SCRIPTS.split("  scripts:")[0]
    (policy,) = parse_documents(old, "old.yaml")
    assert policy.scripts == [] and "scripts" not in policy.to_document()["spec"]
    assert not policy.script_allowed("/app/entrypoint.sh")


def test_user_script_rules_win_over_learned_ones() -> None:
    (learned,) = parse_documents(WITH_SCRIPTS, "learned.yaml")
    (user,) = parse_documents(WITH_SCRIPTS.split("  scripts:")[0] + "  scripts:\n"
                              "    - {path: /app/entrypoint.sh, action: deny}\n", "user.yaml")
    merged = merge(learned, user)
    assert merged is not None and not merged.script_allowed("/app/entrypoint.sh")
    assert merged.script_allowed("/app/jobs/report.py")


@pytest.mark.parametrize(("change", "line", "message"), [
    ("{path: /app/entrypoint.sh, interpreters: [/bin/sh]}", 10, "unknown field 'script'"),
    ("{path: app/entrypoint.sh}", 10, "is not absolute"),
    ("{path: /app/entrypoint.sh, interpreters: [sh]}", 10, "interpreter: 'sh' is not absolute"),
    ("{path: /app/entrypoint.sh, action: block}", 10, "is not one of allow, deny"),
])
def test_bad_script_rules_name_file_and_line(change: str, line: int, message: str) -> None:
    bad = change.replace("{path:", "{script:") if "unknown" in message else change
    text = WITH_SCRIPTS.replace("{path: /app/entrypoint.sh, interpreters: [/bin/sh]}", bad)
    with pytest.raises(PolicyError, match=rf"^bad\.yaml:{line}: .*{message}"):
        parse_documents(text, "bad.yaml")


def test_crd_schema_accepts_script_rules_and_refuses_bad_ones() -> None:
    crd = yaml.safe_load((REPO / "deploy" / "crds" / "workloadpolicy.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    (policy,) = parse_documents(WITH_SCRIPTS, "p.yaml")
    jsonschema.validate(policy.to_document(), schema)
    jsonschema.validate(yaml.safe_load(WITH_SCRIPTS), schema)
    for broken in (WITH_SCRIPTS.replace("[/bin/sh]", "[sh]"), WITH_SCRIPTS.replace("action: deny", "action: x")):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(yaml.safe_load(broken), schema)


@pytest.mark.parametrize(("exe", "args", "cwd", "script"), [
    ("/bin/sh", "/tmp/new.sh", "/", "/tmp/new.sh"),
    ("/usr/bin/bash", "-e -o pipefail run.sh a b", "/app", "/app/run.sh"),
    ("/bin/dash", "../x/./y.sh", "/app/sub", "/app/x/y.sh"),
    ("/usr/bin/python3.11", "-u -W ignore job.py --flag", "/srv", "/srv/job.py"),
    ("/usr/bin/perl", "-w /opt/t.pl", "/", "/opt/t.pl"),
    ("/bin/sh", "-c 'touch /tmp/m'", "/", None),
    ("/bin/bash", "-ec 'x'", "/", None),
    ("/bin/sh", "-s", "/", None),
    ("/bin/sh", "", "/", None),
    ("/usr/bin/python3", "-c print(1)", "/", None),
    ("/usr/bin/python3", "-m http.server", "/", None),
    ("/usr/bin/python3", "-", "/", None),
    ("/usr/bin/perl", "-e 1", "/", None),
    ("/usr/bin/touch", "/tmp/new.sh", "/", None),
    ("/bin/sh", "rel.sh", "", None),
    ("/bin/sh", "'unterminated", "/", None),
    ("/usr/bin/ruby", "-I lib app.rb", "/srv", "/srv/app.rb"),
    ("/usr/bin/ruby", "-e 'puts 1'", "/", None),
    ("/usr/bin/node", "--require ./hook.js server.js", "/app", "/app/server.js"),
    ("/usr/bin/node", "-p 1+1", "/", None),
    ("/usr/bin/php", "-d x=1 index.php", "/var/www", "/var/www/index.php"),
    ("/usr/bin/php", "-r 'echo 1;'", "/", None),
])
def test_script_named_by_an_interpreter_command_line(exe: str, args: str, cwd: str, script: str | None) -> None:
    assert script_of(exe, args, cwd) == script


def test_a_multi_call_binary_is_the_program_its_argv_names() -> None:
    # Alpine's /bin/sh is busybox: /proc/PID/exe names busybox, argv[0] the applet (or argv[1] when it is
    # called by its own name); before, no script was ever named for it, so protect let unknown scripts run
    assert script_of_argv("/bin/busybox", ["/tmp/new.sh"], "/", "sh") == "/tmp/new.sh"
    assert script_of_argv("/bin/busybox", ["-e", "run.sh"], "/app", "/bin/ash") == "/app/run.sh"
    assert script_of("/bin/busybox", "sh run.sh", "/app", "busybox") == "/app/run.sh"
    assert script_of("/usr/bin/toybox", "sh -c 'x'", "/", "toybox") is None
    assert script_of_argv("/bin/busybox", ["-l", "/tmp/new.sh"], "/", "ls") is None  # not an interpreter
    assert script_of_argv("/bin/busybox", [], "/", "busybox") is None
    assert script_of_argv("/bin/busybox", ["/tmp/new.sh"], "/", "") is None  # no argv: nothing to go by
    assert script_of("/bin/ash", "x.sh", "/app") == "/app/x.sh"
    assert runs_scripts("/bin/busybox") and runs_scripts("/usr/bin/python3.12") and not runs_scripts("/bin/ls")
    assert c_is_code("/usr/bin/dash") and c_is_code("/usr/bin/python3.11") and c_is_code("/bin/busybox")
    assert not c_is_code("/usr/bin/perl") and not c_is_code("/usr/bin/php") and not c_is_code("/usr/bin/node")


def test_scripts_are_learned_in_discover_and_deviate_in_monitor(tmp_path: Path) -> None:
    from test_policy import Clock, engine_for, event

    clock = Clock()
    engine = engine_for(tmp_path, clock)

    def run(args: str, cwd: str = "/app") -> list:
        return engine.process(event("u1", **{"evt.type": "execve", "proc.exepath": "/bin/sh", "proc.args": args,
                                             "proc.cwd": cwd, "proc.pexepath": "/usr/bin/tini"}))

    assert run("entrypoint.sh") == [] and run("-c 'echo hi'") == []
    clock.now += 61
    engine.tick()
    assert run("/app/entrypoint.sh", "/") == [] and run("-c 'echo other'") == []  # learned; -c is not a script
    (alert,) = run("/tmp/new.sh")
    assert alert.output_fields["policy.deviation"] == "script /tmp/new.sh (run by /bin/sh)"
    assert alert.output_fields["policy.action"] == "alert"


@pytest.mark.parametrize(("exe", "env", "cwd", "loaded"), [
    ("/bin/bash", "PATH=/bin BASH_ENV=/tmp/x.sh HOME=/", "/", [("BASH_ENV", "/tmp/x.sh")]),
    ("/bin/bash", "BASH_ENV=hook.sh", "/app/", [("BASH_ENV", "/app/hook.sh")]),
    ("/bin/dash", "BASH_ENV=/tmp/x.sh", "/", []),  # only bash reads it
    ("/usr/bin/node", "NODE_OPTIONS=--require ./a.js --max-old-space-size=64 --import=/t/b.mjs -r dotenv/config",
     "/app", [("NODE_OPTIONS", "/app/a.js"), ("NODE_OPTIONS", "/t/b.mjs")]),  # a module name is no file
    ("/usr/bin/python3", "NODE_OPTIONS=--require /tmp/a.js", "/", []),
    ("/usr/bin/ruby", "RUBYOPT=-r/tmp/x.rb -w", "/", [("RUBYOPT", "/tmp/x.rb")]),
    ("/usr/bin/curl", "LD_PRELOAD=/tmp/a.so:libc_extra.so /x/b.so A=1", "/",
     [("LD_PRELOAD", "/tmp/a.so"), ("LD_PRELOAD", "/x/b.so")]),
    ("/usr/bin/curl", "LANG=C PATH=/bin", "/", []),
    ("/bin/bash", "XBASH_ENV=/tmp/x.sh", "/", []),
])
def test_code_loaded_through_the_environment(exe: str, env: str, cwd: str, loaded: list) -> None:
    assert env_code(exe, env, cwd) == loaded


def test_environment_loaded_code_is_learned_in_discover_and_deviates_in_monitor(tmp_path: Path) -> None:
    from test_policy import Clock, engine_for, event

    clock = Clock()
    engine = engine_for(tmp_path, clock)

    def run(exe: str, env: str) -> list:
        return engine.process(event("u1", **{"evt.type": "execve", "proc.exepath": exe, "proc.args": "-c true",
                                             "proc.cwd": "/app/", "proc.env": env}))

    assert run("/bin/bash", "PATH=/bin BASH_ENV=/app/env.sh") == []
    assert run("/usr/bin/node", "NODE_OPTIONS=--require /app/trace.js") == []
    clock.now += 61
    engine.tick()
    assert run("/bin/bash", "PATH=/bin BASH_ENV=/app/env.sh") == []  # learned
    assert run("/bin/bash", "PATH=/bin") == []
    (alert,) = run("/bin/bash", "PATH=/bin BASH_ENV=/tmp/evil.sh LD_PRELOAD=/tmp/hook.so")
    assert alert.output_fields["policy.deviation"] == \
        "code /tmp/evil.sh (BASH_ENV), /tmp/hook.so (LD_PRELOAD) loaded by /bin/bash"
    assert alert.output_fields["policy.action"] == "alert"
    (alert,) = run("/usr/bin/node", "NODE_OPTIONS=--require /tmp/x.js")
    assert "/tmp/x.js (NODE_OPTIONS)" in alert.output_fields["policy.deviation"]


def test_a_shebang_script_exec_d_directly_is_named_from_the_exact_argv() -> None:
    # the kernel runs `#!/bin/sh` scripts as argv ["/bin/sh", "/tmp/my script.sh", ...]: spaces survive
    assert script_of_argv("/usr/bin/dash", ["/tmp/my script.sh", "arg"], "/") == "/tmp/my script.sh"
    assert script_of_argv("/usr/bin/dash", ["-c", "x"], "/") is None


def test_the_exec_guard_holds_allowed_interpreters_and_decides_by_spec_scripts() -> None:
    g = GuardedCgroup(7, frozenset({1, 2}), interpreter_inodes=frozenset({2}),
                      scripts=(ScriptRule("/app/*.sh"), ScriptRule("/app/bad.sh", action="deny")))
    entries = plan_entries([g, GuardedCgroup(9, frozenset({3}), profile=False, drift_after_ns=123)])
    assert entries == {"g": {(7,): 1, (9,): 2}, "s": {(9,): 123}, "a": {(7, 1): 1, (7, 2): 1, (9, 3): 1},
                       "i": {(7, 2): 1}, "c": {}, "m": {}, "r": {}}  # a pattern: the answerer decides
    assert "signal(19)" in program()
    assert map_keys_max([g]) == 4096
    assert map_keys_max([GuardedCgroup(7, frozenset(range(5000)))]) == 8192  # 5,000 entries + the placeholder
    assert g.script_allowed("/app/run.sh") and not g.script_allowed("/app/bad.sh")
    assert not g.script_allowed("/tmp/new.sh")


def test_exact_allowed_scripts_go_into_the_program_and_the_rest_to_the_answerer() -> None:
    long = "/app/" + "x" * 60 + ".sh"  # longer than bpftrace's strings
    g = GuardedCgroup(7, frozenset({2}), interpreter_inodes=frozenset({2}), scripts=(
        ScriptRule("/app/run.sh"), ScriptRule("/app/bad.sh"), ScriptRule("/app/b*.sh", action="deny"),
        ScriptRule("/app/deny.sh", action="deny"), ScriptRule("rel.sh"), ScriptRule("/app/../etc/x.sh"),
        ScriptRule("/app/[ab].sh"), ScriptRule(long)))
    assert direct_scripts(g) == {"/app/run.sh"}
    assert plan_entries([g])["c"] == {(7, "/app/run.sh"): 1}
    assert plan_entries([GuardedCgroup(8, frozenset({2}), scripts=(ScriptRule("/app/run.sh"),))])["c"] == {}
    assert pack_key((7, "/app/run.sh")) == (7).to_bytes(8, "little") + b"/app/run.sh".ljust(64, b"\0")
    assert pack_key((7, 2)) == (7).to_bytes(8, "little") + (2).to_bytes(8, "little")
    assert plan_entries([GuardedCgroup(8, mount_ns=4026532174)])["m"] == {(8,): 4026532174}
    inline = GuardedCgroup(9, frozenset({2, 3}), interpreter_inodes=frozenset({2, 3}),
                           inline_code_inodes=frozenset({2}))
    assert plan_entries([inline])["i"] == {(9, 2): 2, (9, 3): 1}  # 2: -c as argv[1] needs no hold
    shell = GuardedCgroup(9, frozenset({2, 3}), interpreter_inodes=frozenset({2, 3}),
                          inline_code_inodes=frozenset({2}), shell_inodes=frozenset({2}))
    assert plan_entries([shell])["i"] == {(9, 2): 3, (9, 3): 1}  # 3: a shell, `-e SCRIPT` too
    assert '$a1 == "-c"' in program() and "$k == 3" in program()
    assert plan_entries([GuardedCgroup(8, runtime_mount_ns=4026531841)])["r"] == {(8,): 4026531841}
    assert plan_entries([GuardedCgroup(8, mount_ns=4026532174)])["r"] == {}  # unknown: not written
