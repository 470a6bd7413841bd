"""Decoding kubeguard.bt's output, on lines recorded from the real sensor (tests/root/sensors run with
KG_RECORD_BPFTRACE set), plus the program builder that adapts kubeguard.bt to the kernel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kubeguard.sensors.ebpf import OPTIONAL_SECTIONS, build_program, prefix_filter, split_sections
from kubeguard.sensors.ebpf_decode import STALE_NS, BpftraceDecoder, decode_lines, strip_internal
from kubeguard.sensors.flags import cap_names, errno_result, mode_names, open_flags, tty_nr

RECORDED = Path(__file__).parent / "data" / "bpftrace-recorded.jsonl"
OFFSET = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return decode_lines(RECORDED.read_text().splitlines(), clock_offset_ns=OFFSET)


def one(events: list[dict], **match: object) -> dict:
    found = [e for e in events if all(e.get(k.replace("__", ".")) == v for k, v in match.items())]
    assert len(found) == 1, (match, len(found))
    return found[0]


def test_every_recorded_line_decodes(events: list[dict]) -> None:
    decoder = BpftraceDecoder()
    for line in RECORDED.read_text().splitlines():
        decoder.feed(line)
    decoder.flush()
    assert decoder.parse_errors == 0
    assert len(events) == 24  # 31 lines: exec entry/argv/cwd lines and the mount entry line join into events


def test_exec_joins_entry_argv_exit_and_cwd(events: list[dict]) -> None:
    ev = one(events, evt__type="execve", proc__vpid=17478)
    assert ev["proc.args"] == "kgs23dfa863 two three four"
    assert ev["proc.cmdline"] == "echo kgs23dfa863 two three four"
    assert (ev["proc.exepath"], ev["proc.exe"], ev["proc.name"]) == ("/bin/echo", "/bin/echo", "echo")
    assert ev["proc.cwd"] == "/tmp/pytest-of-root/pytest-71/test_exec_with_args_cwd_and_ex0/"
    assert ev["evt.time"] == OFFSET + 9701651343936
    assert (ev["evt.res"], ev["evt.dir"], ev["user.loginuid"], ev["proc.sid"], ev["proc.tty"]) == (
        "SUCCESS", "<", -1, 3482, 0)
    assert (ev["_cgroup_id"], ev["_pidns"]) == (1, 4026531836)
    assert not any(k.startswith("_") for k in strip_internal(ev))


def test_exec_in_a_pid_namespace_and_its_exit(events: list[dict]) -> None:
    ev = one(events, evt__type="execve", proc__pid=17480)
    assert (ev["proc.vpid"], ev["_pidns"], ev["proc.args"]) == (1, 4026532177, "kgs230c2a10")
    assert ev["proc.cwd"] == "/work/wt/agent-sensors/"
    done = one(events, evt__type="procexit", proc__pid=17480)
    assert done["evt.arg.ret"] == 0


def test_connect_accept_and_unix(events: list[dict]) -> None:
    ev = one(events, evt__type="connect", proc__pid=17484)
    assert ev["fd.name"] == "127.0.0.1:35620->127.0.0.1:49859"
    assert (ev["fd.sip"], ev["fd.sport"], ev["fd.cport"], ev["fd.l4proto"]) == ("127.0.0.1", 49859, 35620, "tcp")
    acc = one(events, evt__type="accept4")
    assert (acc["fd.cport"], acc["fd.sport"], acc["fd.rport"], acc["fd.lport"]) == (35620, 49859, 35620, 49859)
    assert acc["fd.num"] == 15
    v6 = one(events, evt__type="connect", fd__type="ipv6")
    assert (v6["fd.sip"], v6["fd.sport"], v6["evt.res"], v6["evt.rawres"]) == ("::1", 48623, "ECONNREFUSED", -111)
    unix = one(events, evt__type="connect", fd__type="unix")
    assert unix["fd.name"].endswith("/kg.sock")
    assert (ev["fd.sockfamily"], v6["fd.sockfamily"], acc["fd.sockfamily"], unix["fd.sockfamily"]) == (
        "ip", "ip", "ip", "unix")  # libsinsp's fd.sockfamily (read by "System procs network activity")
    pending = one(events, evt__type="connect", proc__pid=17346)
    assert pending["evt.res"] == "EINPROGRESS"


def test_open_fields(events: list[dict]) -> None:
    ev = one(events, evt__type="openat", fd__name="/etc/passwd")
    assert (ev["fd.directory"], ev["fd.filename"], ev["fd.typechar"], ev["fd.num"]) == ("/etc", "passwd", "f", 13)
    assert (ev["evt.arg.flags"], ev["evt.is_open_read"], ev["evt.is_open_write"]) == ("O_RDONLY|O_CLOEXEC", True,
                                                                                       False)


def test_privilege_calls(events: list[dict]) -> None:
    assert one(events, evt__type="setgid")["evt.arg.gid"] == 65534
    res = one(events, evt__type="setresuid")
    assert (res["evt.arg.ruid"], res["evt.arg.euid"], res["evt.arg.suid"], res["user.uid"]) == (65534,) * 4
    back = one(events, evt__type="setuid")
    assert (back["evt.arg.uid"], back["evt.res"]) == (0, "EPERM")
    assert "evt.arg.euid" not in back
    cap = one(events, evt__type="capset")
    assert cap["evt.arg.cap_effective"] == "CAP_SETUID CAP_SYS_ADMIN"
    assert cap["evt.rawarg.cap_permitted"] == 511 << 32 | 4278190079
    pt = one(events, evt__type="ptrace")
    assert (pt["evt.arg.request"], pt["evt.arg.pid"]) == ("PTRACE_ATTACH", 17489)


def test_mount_namespaces_memfd_chmod(events: list[dict]) -> None:
    mount = one(events, evt__type="mount")
    assert (mount["evt.arg.dev"], mount["evt.arg.dir"], mount["evt.arg.type"]) == (
        "kgsa77eafc3", "/tmp/kgs-mnt-3feyp06k", "tmpfs")
    assert one(events, evt__type="umount")["evt.arg.name"] == "/tmp/kgs-mnt-3feyp06k"
    assert one(events, evt__type="unshare")["evt.arg.flags"] == "CLONE_NEWPID"
    setns = one(events, evt__type="setns")
    assert (setns["evt.arg.fd"], setns["evt.arg.nstype"]) == (3, "CLONE_NEWUTS")
    memfd = one(events, evt__type="memfd_create")
    assert (memfd["evt.arg.name"], memfd["evt.arg.flags"], memfd["fd.num"]) == ("kgsfcd85d2d", "MFD_CLOEXEC", 3)
    chm = one(events, evt__type="fchmodat")
    assert chm["evt.arg.mode"] == "S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR|S_ISUID"
    assert (chm["evt.arg.filename"], chm["evt.arg.dirfd"]) == ("/tmp/kgs-fjw9yi8k/suid-bin", -100)


def test_dup2_of_a_socket_vs_a_file(events: list[dict]) -> None:
    sock = one(events, evt__type="dup2", evt__arg__newfd=1)
    assert (sock["fd.type"], sock["fd.num"], sock["fd.sip"], sock["fd.sport"]) == ("ipv4", 1, "127.0.0.1", 53425)
    plain = one(events, evt__type="dup2", evt__arg__newfd=2)
    assert (plain["fd.type"], plain["fd.typechar"]) == ("file", "f")
    assert "fd.sip" not in plain


def test_lost_events_and_bad_lines_are_counted() -> None:
    decoder = BpftraceDecoder()
    assert decoder.feed('{"type": "lost_events", "data": {"events": 12}}') == []
    assert decoder.feed("Lost 3 events") == []
    for bad in ("not json", '{"type": "printf", "data": "ZZ\\u001f1\\n"}', '{"type": "printf", "data": "C4\\u001fx"}',
                '{"type": "printf", "data": "O\\u001f1\\u001f2\\n"}'):
        assert decoder.feed(bad) == []
    assert (decoder.lost, decoder.parse_errors) == (15, 4)
    decoder.feed('{"type": "printf", "data": "READY\\n"}')
    assert decoder.ready


def test_exec_without_cwd_lines_is_flushed_not_lost() -> None:
    lines = [ln for ln in RECORDED.read_text().splitlines() if '"W\\u001f17478' not in ln]
    ev = one(decode_lines(lines), evt__type="execve", proc__pid=17478)
    assert ev["proc.args"] == "kgs23dfa863 two three four"
    assert "proc.cwd" not in ev


def test_exec_whose_exit_lines_come_before_its_entry_lines() -> None:
    """A process that migrated CPU during exec: bpftrace may hand us X and W before A and V.

    bpftrace-exec-v2.jsonl is the current format (A and V end with the "more arguments follow" flag)."""
    lines = (Path(__file__).parent / "data" / "bpftrace-exec-v2.jsonl").read_text().splitlines()
    entry, rest = lines[:2], lines[2:]
    assert ['"A\\u001f' in entry[0], '"V\\u001f' in entry[1]] == [True, True]
    decoder = BpftraceDecoder()
    assert [ev for ln in [*rest, entry[0]] for ev in decoder.feed(ln)] == []  # A says a V line follows
    (ev,) = decoder.feed(entry[1])
    assert (ev["proc.args"], ev["proc.exepath"]) == ("kgs951879e4 two three four", "/bin/echo")
    assert ev["proc.cwd"] == "/tmp/pytest-of-root/pytest-237/test_exec_with_args_cwd_and_ex0/"
    in_order = BpftraceDecoder()
    emitted = [[ev["proc.args"] for ev in in_order.feed(ln)] for ln in lines]
    assert emitted == [[], [], [], [], ["kgs951879e4 two three four"]]  # complete at its last cwd line


def test_exec_missing_lines_is_emitted_once_stale() -> None:
    lines = [ln for ln in RECORDED.read_text().splitlines() if "17478" in ln and '"W' not in ln and '"Q' not in ln]
    decoder = BpftraceDecoder()
    assert [ev for ln in lines for ev in decoder.feed(ln)] == []  # waiting for its cwd lines
    (ev,) = decoder.feed(other_exit(STALE_NS + 1_000_000_000))  # an exit line over STALE_NS later expires it
    assert ev["proc.args"] == "kgs23dfa863 two three four" and "proc.cwd" not in ev


def test_exec_entry_read_after_later_exits_keeps_its_arguments() -> None:
    """A loaded bpftrace drains one CPU's ring after another: an entry line can come after exits 2 s newer."""
    lines = [ln for ln in RECORDED.read_text().splitlines() if "17478" in ln and '"Q' not in ln]
    entry = [ln for ln in lines if '"A' in ln or '"V' in ln]
    record = json.loads(entry[0])  # recorded before the A line had its `more` flag: a V line follows
    entry[0] = json.dumps({**record, "data": record["data"].removesuffix("\n") + "\x1f1\n"})
    decoder = BpftraceDecoder()
    assert [ev for ln in lines if '"A' not in ln and '"V' not in ln for ev in decoder.feed(ln)] == []
    assert decoder.feed(other_exit(2_000_000_000)) == []  # another thread's exit, 2 s later: still waiting
    (ev,) = [ev for ln in entry for ev in decoder.feed(ln)]
    assert ev["proc.args"] == "kgs23dfa863 two three four"


def other_exit(after_ns: int) -> str:
    """An exec exit line of thread 9, `after_ns` after the recorded exec of thread 17478."""
    return json.dumps({"type": "printf", "data": "\x1f".join(
        ["X", str(9701651343936 + after_ns), "9", "9", "1", "0", "0", "1", "4026531836", "9", "true",
         "0", "0", "1", "0", "0"]) + "\n"})


def test_module_load_replay() -> None:
    """Our kernel has no module tracepoints: this line is built to kubeguard.bt's MOD format by hand."""
    line = json.dumps({"type": "printf", "data": "\x1f".join(
        ["MOD", "5", "4242", "4242", "1", "0", "0", "77", "4026531836", "4242", "insmod",
         "tracepoint:syscalls:sys_exit_finit_module", "0"]) + "\n"})
    (ev,) = decode_lines([line])
    assert (ev["evt.type"], ev["proc.name"], ev["evt.res"], ev["_cgroup_id"]) == ("finit_module", "insmod", "SUCCESS",
                                                                                  77)


def test_program_drops_sections_whose_tracepoints_are_missing() -> None:
    source = Path(__file__).parents[2] / "src" / "kubeguard" / "sensors" / "kubeguard.bt"
    text = source.read_text()
    names = [name for name, _ in split_sections(text)]
    assert {"exec", "connect", "open", "dup", "modules", "chmod"} <= set(names)
    everything = {f"{c}:{t}" for c, t in re.findall(r"tracepoint:([a-z0-9_]+):([a-z0-9_]+)", text)}
    program, dropped = build_program(everything, source=text)
    assert dropped == []
    assert "@@PREFIX_FILTER@@" not in program
    program, dropped = build_program(everything - {"syscalls:sys_enter_finit_module"}, source=text)
    assert dropped == ["modules"]
    assert "finit_module" not in program and "sys_enter_execve" in program


def test_prefix_filter_nests_by_top_directory() -> None:
    text = prefix_filter(("/etc/", "/usr/bin/", "/usr/sbin/"), ignored=("/etc/ld.so.cache",))
    assert text == ('((strncmp($f, "/etc/", 5) == 0 || (strncmp($f, "/usr/", 5) == 0 && '
                    '(strncmp($f, "/usr/bin/", 9) == 0 || strncmp($f, "/usr/sbin/", 10) == 0))) && '
                    'strncmp($f, "/etc/ld.so.cache", 17) != 0)')


def test_flag_rendering() -> None:
    assert open_flags(0o101 | 0o1000) == "O_WRONLY|O_CREAT|O_TRUNC"
    assert mode_names(0o4755).endswith("S_ISUID")
    assert cap_names(1 << 21 | 1) == "CAP_CHOWN CAP_SYS_ADMIN"
    assert (errno_result(0), errno_result(-13)) == ("SUCCESS", "EACCES")
    assert tty_nr(136, 3) == 34819  # /dev/pts/3


def test_field_table_matches_every_printf_of_the_program() -> None:
    """LAYOUTS names as many fields per tag as kubeguard.bt prints, and every tag printed by it or by the compiled
    exec probe has a layout."""
    from kubeguard.sensors.ebpf_decode import LAYOUTS

    sources = Path(__file__).parents[2] / "src" / "kubeguard" / "sensors"
    program = (sources / "kubeguard.bt").read_text()
    printed: dict[str, set[int]] = {}
    for fmt in re.findall(r'printf\("([A-Z0-9]+(?:\\x1f[^"]*)?)\\n"', program):
        tag, *fields = fmt.split("\\x1f")
        printed.setdefault(tag, set()).add(len(fields))
    printed.pop("READY", None)
    probe_tags = set(re.findall(r'begin\("([A-Z0-9]+)"\)', (sources / "execprobe.c").read_text()))
    assert probe_tags - set(printed) == {"E"}  # the probe's whole-exec line; its other lines are the program's
    assert set(printed) | probe_tags == set(LAYOUTS)
    for tag, counts in printed.items():
        assert counts == {len(LAYOUTS[tag].fields)}, (tag, counts, list(LAYOUTS[tag].fields))


PATHOPS = Path(__file__).parent / "data" / "bpftrace-pathops.jsonl"  # recorded: ln -s, ln, mv, rm, mkdir, ...


@pytest.fixture(scope="module")
def pathops() -> list[dict]:
    return decode_lines(PATHOPS.read_text().splitlines())


def test_link_rename_unlink_mkdir_carry_falcos_argument_names(pathops: list[dict]) -> None:
    symlink = one(pathops, evt__type="symlinkat")
    assert (symlink["evt.arg.target"], symlink["evt.arg.linkpath"], symlink["evt.arg.linkdirfd"]) == (
        "/etc/shadow", "s1", -100)
    link = one(pathops, evt__type="linkat")
    assert (link["evt.arg.oldpath"], link["evt.arg.newpath"], link["evt.arg.flags"]) == ("/etc/hostname", "h1", "0")
    rename = one(pathops, evt__type="renameat2")
    assert (rename["evt.arg.oldpath"], rename["evt.arg.newpath"], rename["evt.arg.flags"]) == (
        "a", "b", "RENAME_NOREPLACE")
    unlink = one(pathops, evt__type="unlinkat")
    assert (unlink["evt.arg.name"], unlink["evt.arg.dirfd"], unlink["evt.rawres"]) == ("b", -100, 0)
    assert one(pathops, evt__type="mkdir")["evt.arg.path"] == "d"
    assert one(pathops, evt__type="rmdir")["evt.arg.path"] == "d"


def test_open_name_is_resolved_and_raw_kept(pathops: list[dict]) -> None:
    traversal = one(pathops, fd__nameraw="/var/../etc/hostname")
    assert (traversal["fd.name"], traversal["fd.directory"], traversal["evt.arg.name"]) == (
        "/etc/hostname", "/etc", "/etc/hostname")
    assert "CAP_SYS_ADMIN" in traversal["thread.cap_effective"]
    assert one(pathops, fd__name="/proc/self/environ")["evt.is_open_read"] is True
    created = one(pathops, fd__name="trunc")
    assert created["evt.arg.flags"] == "O_WRONLY|O_CREAT|O_TRUNC"
    assert (created["evt.is_open_create"], created["evt.is_open_exec"]) == (True, False)  # mode 0666


def test_open_exec_means_created_with_an_execute_bit() -> None:
    line = "\x1f".join(["O", "1", "7", "7", "1", "0", "0", "1", "1", "7", "python3",
                        "tracepoint:syscalls:sys_exit_openat", "3", str(0o1 | 0o100), str(0o755), "5", "0", "x"])
    event = decode_lines([json.dumps({"type": "printf", "data": line + "\n"})])[0]
    assert (event["evt.is_open_create"], event["evt.is_open_exec"], event["thread.cap_effective"]) == (True, True, "")
    assert (event["evt.arg.dirfd"], event["fd.name"], event["fd.nameraw"]) == (5, "x", "x")  # relative: as written


def test_directory_open_is_a_directory_fd() -> None:
    line = "\x1f".join(["O", "1", "7", "7", "1", "0", "0", "1", "1", "7", "ls", "tracepoint:syscalls:sys_exit_openat",
                        "3", str(0o200000 | 0o4000 | 0o2000000), "0", "-100", "0", "/root/.ssh"])
    event = decode_lines([json.dumps({"type": "printf", "data": line + "\n"})])[0]
    assert (event["fd.type"], event["fd.typechar"], event["evt.is_open_read"]) == ("directory", "d", True)


def _bt_line(tag: str, *fields: object, pid: int = 4242) -> str:
    header = (17304932985274, pid, pid, 1, 0, 0, 1, 4026531836, pid, "kg-comm")
    return json.dumps({"type": "printf", "data": "\x1f".join(map(str, (tag, *header, *fields))) + "\n"})


def test_memfd_exec_flag_comes_before_its_exit_line() -> None:
    xf_memfd = "XF\x1f4242\x1f8\x1f0\x1f0\x1f0\n"  # fact 8: the program's file is a memfd
    lines = [_bt_line("A", "", "kg-payload", "", "", "0"), json.dumps({"type": "printf", "data": xf_memfd}),
             _bt_line("X", 0, 4294967295, 1, 0, 0),
             json.dumps({"type": "printf", "data": "W\x1f4242\x1f0\x1ftmp|0\x1f/|1\x1f/|1\x1f1\n"}),
             _bt_line("A", "/bin/true", "true", "", "", "0"), _bt_line("X", 0, 4294967295, 1, 0, 0),
             json.dumps({"type": "printf", "data": "W\x1f4242\x1f0\x1ftmp|0\x1f/|1\x1f/|1\x1f1\n"})]
    execs = [e for e in decode_lines(lines) if e["evt.type"] == "execve"]
    assert [(e["proc.is_exe_from_memfd"], e.get("evt.arg.flags")) for e in execs] == [
        (True, "EXE_FROM_MEMFD"), (False, None)]


def test_packet_socket() -> None:
    (event,) = decode_lines([_bt_line("SK", 3, 17, 524291, 768)])
    assert (event["evt.type"], event["evt.arg.domain"], event["evt.rawarg.domain"], event["fd.num"]) == (
        "socket", "AF_PACKET", 17, 3)
    assert event["evt.args"] == "domain=17(AF_PACKET) type=524291 proto=768"


def test_unshare_carries_the_callers_capabilities() -> None:
    tc = json.dumps({"type": "printf", "data": f"TC\x1f4242\x1f{1 << 21}\x1f0\n"})
    ns = _bt_line("NS", "tracepoint:syscalls:sys_exit_unshare", 0, 0x10000000, 0)
    (event,) = decode_lines([tc, ns])
    assert (event["evt.type"], event["thread.cap_permitted"], event["thread.cap_effective"]) == (
        "unshare", "CAP_SYS_ADMIN", "")
    (plain,) = decode_lines([ns])
    assert "thread.cap_permitted" not in plain


def test_exit_line_names_the_program_when_a_failed_path_attempt_is_read_after_it() -> None:
    # execvp tries each PATH entry: A(/root/.cargo/bin/cat) X(ENOENT) ... A(/usr/bin/cat) X(0). The successful
    # exit migrates CPU (sched_exec), so its X and W lines may be read before the failed attempts' lines.
    cwd = json.dumps({"type": "printf", "data": "W\x1f4242\x1f0\x1ftmp|0\x1f/|1\x1f/|1\x1f1\n"})
    lines = [_bt_line("X", 0, 4294967295, 1, 0, 0, "/usr/bin/cat"), cwd,
             _bt_line("A", "/root/.cargo/bin/cat", "cat", "/etc/hostname", "", "0"),
             _bt_line("X", -2, 4294967295, 1, 0, 0, "/root/.cargo/bin/cat"), cwd,
             _bt_line("A", "/usr/bin/cat", "cat", "/etc/hostname", "", "0")]
    execs = [e for e in decode_lines(lines) if e["evt.type"] == "execve"]
    succeeded = [e for e in execs if e["evt.res"] == "SUCCESS"]
    assert [e["proc.exepath"] for e in succeeded] == ["/usr/bin/cat"]
    assert all(e["proc.exepath"] == "/root/.cargo/bin/cat" for e in execs if e["evt.res"] == "ENOENT")


def _exec_lines(facts_line: str | None) -> list[str]:
    cwd = json.dumps({"type": "printf", "data": "W\x1f4242\x1f0\x1ftmp|0\x1f/|1\x1f/|1\x1f1\n"})
    head = [_bt_line("A", "/tmp/kg-dropped", "kg-dropped", "", "", "0")]
    if facts_line is not None:
        head.append(json.dumps({"type": "printf", "data": facts_line + "\n"}))
    return [*head, _bt_line("X", 0, 4294967295, 1, 0, 0), cwd]


def test_exec_facts_come_before_their_exit_line() -> None:
    caps = (1 << 21) | (1 << 12)  # CAP_SYS_ADMIN, CAP_NET_ADMIN
    (lead_upper_init,) = [e for e in decode_lines(_exec_lines(f"XF\x1f4242\x1f7\x1f{caps}\x1f{1 << 21}\x1f0"))
                          if e["evt.type"] == "execve"]
    assert (lead_upper_init["proc.is_vpgid_leader"], lead_upper_init["proc.is_exe_upper_layer"]) == (True, True)
    assert lead_upper_init["evt.arg.flags"] == "EXE_UPPER_LAYER"
    assert lead_upper_init["thread.cap_permitted"] == "CAP_NET_ADMIN CAP_SYS_ADMIN"
    assert lead_upper_init["thread.cap_effective"] == "CAP_SYS_ADMIN"
    # no XF line: no fact holds (the program prints one whenever a fact does), and no capabilities are claimed
    (plain,) = [e for e in decode_lines(_exec_lines(None)) if e["evt.type"] == "execve"]
    assert (plain["proc.is_vpgid_leader"], plain["proc.is_exe_upper_layer"]) == (False, False)
    assert "thread.cap_permitted" not in plain and "evt.arg.flags" not in plain
    (leader,) = [e for e in decode_lines(_exec_lines(f"XF\x1f4242\x1f1\x1f{caps}\x1f0\x1f0"))
                 if e["evt.type"] == "execve"]
    assert (leader["proc.is_vpgid_leader"], leader["proc.is_exe_upper_layer"]) == (True, False)
    assert "thread.cap_permitted" not in leader  # capabilities only for a namespace's pid 1


def test_bpf_prog_load_and_userfaultfd() -> None:
    (load,) = decode_lines([_bt_line("BPF", 7, 5)])
    assert (load["evt.type"], load["evt.arg.cmd"], load["evt.rawarg.cmd"], load["fd.num"], load["evt.res"]) == (
        "bpf", "BPF_PROG_LOAD", 5, 7, "SUCCESS")
    decoder = BpftraceDecoder()
    decoder.own_pid = 4242  # the sensor's own bpftrace attaching its probes
    assert decoder.feed(_bt_line("BPF", 7, 5)) == []
    (uffd,) = decode_lines([_bt_line("UF", 3, 0o2000000 | 1)])
    assert (uffd["evt.type"], uffd["evt.arg.flags"], uffd["evt.rawarg.flags"], uffd["evt.rawres"]) == (
        "userfaultfd", "O_CLOEXEC|UFFD_USER_MODE_ONLY", 0o2000000 | 1, 3)
    (denied,) = decode_lines([_bt_line("UF", -1, 0)])
    assert (denied["evt.res"], "fd.num" in denied) == ("EPERM", False)


def test_datagram_sent_without_connect() -> None:
    """SD4/SD6: an unconnected send to a new destination, with Falco's fd.connected/fd.name_changed."""
    v4, v6 = decode_lines([
        _bt_line("SD4", "tracepoint:syscalls:sys_exit_sendto", 3, 2, 17, "169.254.169.254", 53, "0.0.0.0", 40001),
        _bt_line("SD6", "tracepoint:syscalls:sys_exit_sendmsg", 4, -101, 17, "2001:db8::1", 123, "::", 40002)])
    assert (v4["evt.type"], v4["fd.name"], v4["fd.sip"], v4["fd.sport"], v4["fd.l4proto"]) == (
        "sendto", "0.0.0.0:40001->169.254.169.254:53", "169.254.169.254", 53, "udp")
    assert (v4["fd.connected"], v4["fd.name_changed"], v4["fd.typechar"], v4["fd.num"], v4["evt.rawres"]) == (
        False, True, "4", 3, 2)
    assert (v6["evt.type"], v6["fd.type"], v6["evt.res"], v6["fd.sockfamily"]) == (
        "sendmsg", "ipv6", "ENETUNREACH", "ip")


def test_java_recvfrom_carries_its_data() -> None:
    (event,) = decode_lines([_bt_line("RV", 11, 5, 2, "\\xca\\xfe\\xba\\xbe\\x00\\x00\\x00= hi\\x00\\x00")])
    assert (event["evt.type"], event["fd.num"], event["fd.type"], event["evt.rawres"]) == ("recvfrom", 5, "ipv4", 11)
    assert event["evt.buffer"] == bytes.fromhex("cafebabe0000003d") + b" hi"


def test_datagram_received_without_connect() -> None:
    """RD4: a datagram from a new sender on an unconnected socket: the sender is the client (Falco's tuple)."""
    (event,) = decode_lines([
        _bt_line("RD4", "tracepoint:syscalls:sys_exit_recvfrom", 5, 2, 17, "198.51.100.7", 40100, "0.0.0.0", 5400)])
    assert (event["evt.type"], event["fd.name"], event["fd.cip"], event["fd.sport"], event["fd.rip"]) == (
        "recvfrom", "198.51.100.7:40100->0.0.0.0:5400", "198.51.100.7", 5400, "198.51.100.7")
    assert (event["fd.connected"], event["fd.name_changed"]) == (False, True)


def test_optional_sections_left_out_on_request() -> None:
    """The datagram sections go when no consumer reads their event types (the agent asks when no rule does)."""
    text = (Path(__file__).parents[2] / "src" / "kubeguard" / "sensors" / "kubeguard.bt").read_text()
    assert set(OPTIONAL_SECTIONS) <= {name for name, _ in split_sections(text)}
    everything = {f"{c}:{t}" for c, t in re.findall(r"tracepoint:([a-z0-9_]+):([a-z0-9_]+)", text)}
    full, _ = build_program(everything, source=text)
    lean, dropped = build_program(everything, source=text, skip=tuple(OPTIONAL_SECTIONS))
    assert dropped == [] and '"SD4' in full and '"RD4' in full
    assert '"SD4' not in lean and '"RD4' not in lean and "@sdl" not in lean and "@rdl" not in lean
    assert "sys_enter_connect" in lean


def _percent_r(data: bytes) -> str:
    """bpftrace's %r rendering of a buffer: printable bytes as themselves, the others as \\xNN."""
    return "".join(chr(b) if 0x20 <= b < 0x7f else f"\\x{b:02x}" for b in data)


def _xe_lines(env: bytes, before: bytes = b"/bin/kg-env\0arg\0", tid: int = 4242) -> list[str]:
    """The XE lines kubeguard.bt's execenv section prints for an environment `env` laid out in the new program's
    stack after `before` (argv strings) and before the file name: a chunk that would run past the environment's
    end is the 64 bytes ending there."""
    before = b"\xaa" * 64 + before  # the auxiliary vector and pointer arrays below the strings
    stack = before + env + b"/bin/kg-env\0" + b"\0" * 8
    start, end = len(before), len(before) + len(env)
    lines = []
    for k in range(16):
        if k and len(env) <= k * 256:
            break
        chunks = []
        for j in range(4):
            at = start + k * 256 + 64 * j
            at = end - 64 if at + 64 > end else at
            chunks.append(_percent_r(stack[at:at + 64]))
        data = "\x1f".join(map(str, ("XE", tid, k * 256, len(env), *chunks)))
        lines.append(json.dumps({"type": "printf", "data": data + "\n"}))
    return lines


def _exec_with_env(env_lines: list[str]) -> dict:
    cwd = json.dumps({"type": "printf", "data": "W\x1f4242\x1f0\x1ftmp|0\x1f/|1\x1f/|1\x1f1\n"})
    lines = [_bt_line("A", "/bin/kg-env", "kg-env", "", "", "0"), *env_lines, _bt_line("X", 0, 4294967295, 1, 0, 0),
             cwd]
    (event,) = [e for e in decode_lines(lines) if e["evt.type"] == "execve"]
    return event


def test_exec_environment_copied_in_the_kernel() -> None:
    """XE lines (before their X) give Falco's proc.env: entries joined by spaces, at most 4096 bytes."""
    from kubeguard.sensors.base import ENV_LIMIT, environ_text

    short = b"A=1\0GLIBC_TUNABLES=glibc.malloc.mxfast=0\0"  # shorter than a chunk: read from below its start
    assert _exec_with_env(_xe_lines(short))["proc.env"] == "A=1 GLIBC_TUNABLES=glibc.malloc.mxfast=0"
    odd = b"HOME=/root\0A=b c\0SEP=x\x1fy\nz\0UTF=caf\xc3\xa9\0\0" + b"PAD=" + b"p" * 600 + b"\0HTTP_PROXY=h:1\0"
    assert _exec_with_env(_xe_lines(odd))["proc.env"] == environ_text(odd)
    assert _exec_with_env(_xe_lines(odd))["proc.env"].endswith("HTTP_PROXY=h:1")
    assert "SEP=x\x1fy\nz A=" not in environ_text(odd) and "UTF=café" in environ_text(odd)
    long = b"".join(b"V%04d=%s\0" % (i, b"v" * 40) for i in range(200))  # 9,400 bytes: cut as Falco cuts it
    env = _exec_with_env(_xe_lines(long))["proc.env"]
    assert env == environ_text(long[:ENV_LIMIT]) and env.startswith("V0000=")
    assert env.endswith(" V0087=v") and "V0088" not in env  # 87 entries of 47 bytes, then 7 bytes of the next
    assert _exec_with_env(_xe_lines(long))["_env_truncated"] is True  # the agent may read the rest from /proc
    assert "_env_truncated" not in _exec_with_env(_xe_lines(long[:ENV_LIMIT]))  # exactly the bound: whole
    assert _exec_with_env(_xe_lines(b""))["proc.env"] == ""  # an empty environment is known, not missing
    assert "proc.env" not in _exec_with_env([])  # section left out: the agent may read /proc instead


def test_exec_environment_of_a_lost_exit_does_not_leak() -> None:
    """A thread's XE lines start over at offset 0: a previous exec's (whose X was lost) are not mixed in."""
    stale = _xe_lines(b"OLD=" + b"o" * 500 + b"\0")
    assert _exec_with_env([*stale, *_xe_lines(b"NEW=1\0")])["proc.env"] == "NEW=1"
    # a lost first line: the later lines alone do not claim a partial environment of the right size
    assert _exec_with_env(_xe_lines(b"A=" + b"a" * 300 + b"\0")[1:])["proc.env"] != ""


def test_execenv_section_left_out_unless_proc_env_is_read() -> None:
    from kubeguard.sensors.ebpf import OPTIONAL_FIELD_SECTIONS

    text = (Path(__file__).parents[2] / "src" / "kubeguard" / "sensors" / "kubeguard.bt").read_text()
    assert set(OPTIONAL_FIELD_SECTIONS) <= {name for name, _ in split_sections(text)}
    everything = {f"{c}:{t}" for c, t in re.findall(r"tracepoint:([a-z0-9_]+):([a-z0-9_]+)", text)}
    full, _ = build_program(everything, source=text)
    lean, _ = build_program(everything, source=text, skip=tuple(OPTIONAL_FIELD_SECTIONS))
    assert full.count('printf("XE') == 16 and '"XE' not in lean and "env_start" not in lean
    assert '"XF' in lean and 'printf("X\\x1f' in lean


def test_sendmmsg_and_recvmmsg_are_their_own_event_types() -> None:
    """SD4/RD4 lines of the sendmmsg/recvmmsg probes: Falco's sendmmsg/recvmmsg events with the datagram fields."""
    sent, received = decode_lines([
        _bt_line("SD4", "tracepoint:syscalls:sys_exit_sendmmsg", 3, 2, 17, "198.51.100.7", 53, "0.0.0.0", 40001),
        _bt_line("RD4", "tracepoint:syscalls:sys_exit_recvmmsg", 4, 3, 17, "198.51.100.8", 40002, "0.0.0.0", 5400)])
    assert (sent["evt.type"], sent["fd.name"], sent["evt.rawres"]) == (
        "sendmmsg", "0.0.0.0:40001->198.51.100.7:53", 2)
    assert (received["evt.type"], received["fd.cip"], received["fd.sport"]) == ("recvmmsg", "198.51.100.8", 5400)
    assert all((e["fd.connected"], e["fd.name_changed"]) == (False, True) for e in (sent, received))


def test_malformed_environment_lines_are_parse_errors() -> None:
    decoder = BpftraceDecoder()
    for offset, length in ((-256, 10), (0, -1), (100, 300)):
        line = json.dumps({"type": "printf", "data": f"XE\x1f4242\x1f{offset}\x1f{length}\x1fa\x1fb\x1fc\x1fd\n"})
        assert decoder.feed(line) == []
    assert decoder.parse_errors == 3 and decoder.exec_env == {}


# ---- exec pairing under cross-CPU delay: an exec's entry lines (A, V) come from one CPU's ring, its exit lines
# (X, W) from the CPU it ran on after sched_exec; a batched reader (the perfwake shim) drains them far apart.
T0 = 17304932985274


def _printf(data: str) -> str:
    return json.dumps({"type": "printf", "data": data + "\n"})


def _entry(ns: int, filename: str, *argv: str, tid: int = 4242) -> list[str]:
    """A (and V) lines of one exec attempt stamped `ns`."""
    head = (ns, tid, tid, 1, 0, 0, 1, 4026531836, tid, "kg-comm")
    args = [*argv, "", "", ""][:3] if len(argv) < 3 else list(argv[:3])
    more = "1" if len(argv) > 3 else "0"
    lines = [_printf("\x1f".join(map(str, ("A", *head, filename, *args, more))))]
    if len(argv) > 3:
        rest = [*argv[3:7], "", "", "", ""][:4]
        lines.append(_printf("\x1f".join(map(str, ("V", tid, 3, *rest, "0")))))
    return lines


def _exit(ns: int, entry_ns: int, filename: str, ret: int = 0, cwd: str = "tmp", tid: int = 4242) -> list[str]:
    """X and W lines of the exec attempt whose entry was stamped `entry_ns`."""
    head = (ns, tid, tid, 1, 0, 0, 1, 4026531836, tid, "kg-comm")
    return [_printf("\x1f".join(map(str, ("X", *head, ret, 4294967295, 1, 0, 0, filename, entry_ns)))),
            _printf(f"W\x1f{tid}\x1f0\x1f{cwd}|0\x1f/|1\x1f/|1\x1f1")]


def _procexit(ns: int, tid: int = 4242) -> str:
    return _printf("\x1f".join(map(str, ("Q", ns, tid, tid, 1, 0, 0, 1, 4026531836, tid, "kg-comm", 0))))


def _execs(lines: list[str]) -> list[tuple[str, str, str]]:
    return [(e["evt.res"], e["proc.exepath"], e["proc.args"]) for e in decode_lines(lines) if e["evt.type"] == "execve"]


MS = 1_000_000


def test_exec_split_across_two_cpu_drains_20ms_apart_keeps_its_arguments() -> None:
    """Drain of CPU 1 (the exit, then the thread's next exec entirely), 20 ms later drain of CPU 0 (the entry)."""
    cpu0 = _entry(T0, "/bin/echo", "echo", "one", "two", "three", "four")
    cpu1 = [*_exit(T0 + 2 * MS, T0, "/bin/echo"), *_entry(T0 + 3 * MS, "/bin/echo", "echo", "other"),
            *_exit(T0 + 4 * MS, T0 + 3 * MS, "/bin/echo")]
    decoder = BpftraceDecoder()
    first = [e["proc.args"] for ln in cpu1 for e in decoder.feed(ln)]
    assert first == []  # the later exec waits behind the first one, whose entry is still in CPU 0's ring
    second = [e["proc.args"] for ln in cpu0 for e in decoder.feed(ln)]
    assert second == ["one two three four", "other"]


def test_two_quick_execs_of_one_thread_never_swap_arguments() -> None:
    """A program that re-execs itself: both entries are read before both exits, and in reverse order."""
    a1 = _entry(T0, "/bin/sh", "sh", "-c", "first")
    a2 = _entry(T0 + 2 * MS, "/bin/sh", "sh", "-c", "second")
    x1 = _exit(T0 + 1 * MS, T0, "/bin/sh")
    x2 = _exit(T0 + 3 * MS, T0 + 2 * MS, "/bin/sh")
    for order in ([*a2, *a1, *x2, *x1], [*x2, *a1, *x1, *a2], [*a1, *a2, *x2, *x1], [*x1, *x2, *a2, *a1]):
        assert _execs(order) == [("SUCCESS", "/bin/sh", "-c first"), ("SUCCESS", "/bin/sh", "-c second")], order


def test_failed_path_attempts_pair_with_their_own_entries_in_any_order() -> None:
    """execvp: ENOENT at /usr/local/bin/cat, then /usr/bin/cat runs; each attempt's lines on its own CPU."""
    a1 = _entry(T0, "/usr/local/bin/cat", "cat", "/etc/hostname")
    x1 = _exit(T0 + 1 * MS, T0, "/usr/local/bin/cat", ret=-2)
    a2 = _entry(T0 + 2 * MS, "/usr/bin/cat", "cat", "/etc/hostname")
    x2 = _exit(T0 + 5 * MS, T0 + 2 * MS, "/usr/bin/cat")
    want = [("ENOENT", "/usr/local/bin/cat", "/etc/hostname"), ("SUCCESS", "/usr/bin/cat", "/etc/hostname")]
    for order in ([*x2, *a2, *x1, *a1], [*a2, *x1, *x2, *a1], [*x1, *x2, *a1, *a2]):
        assert sorted(_execs(order)) == sorted(want), order


def test_procexit_is_held_behind_an_exec_still_missing_its_entry() -> None:
    """The process exits before its exec's entry line is read: the procexit comes after the exec, with it."""
    decoder = BpftraceDecoder()
    early = [*_exit(T0 + 1 * MS, T0, "/bin/true"), _procexit(T0 + 2 * MS)]
    assert [e for ln in early for e in decoder.feed(ln)] == []
    out = [e for ln in _entry(T0, "/bin/true", "true") for e in decoder.feed(ln)]
    assert [e["evt.type"] for e in out] == ["execve", "procexit"]
    assert out[0]["proc.exepath"] == "/bin/true"


def test_exec_whose_entry_was_never_seen_is_emitted_at_once() -> None:
    """Entry timestamp 0: the agent started during the exec; no entry line will come, the exec need not wait."""
    decoder = BpftraceDecoder()
    (ev,) = [e for ln in _exit(T0, 0, "/bin/true") for e in decoder.feed(ln)]  # complete at its cwd line
    assert (ev["evt.type"], ev["proc.exepath"], ev["proc.cwd"]) == ("execve", "/bin/true", "/tmp/")


def test_idle_expiry_waits_for_the_other_cpus_drain_until_stale() -> None:
    decoder = BpftraceDecoder()
    assert [e for ln in _exit(T0 + MS, T0, "/bin/echo") for e in decoder.feed(ln)] == []
    assert decoder.expire(T0 + 200 * MS) == []  # idle 0.2 s: the entry may still be in another CPU's ring
    (ev,) = decoder.expire(T0 + MS + STALE_NS + 1)
    assert ev["proc.exepath"] == "/bin/echo" and ev["proc.args"] == ""


def test_mount_exit_read_before_its_entry_keeps_its_target() -> None:
    """A mount sleeps: its exit line (CPU 1) and the thread's next mount come before its entry line (CPU 0)."""
    def ma(entry_ns: int, target: str) -> str:
        return _printf(f"MA\x1f4242\x1ftmpfs\x1f{target}\x1ftmpfs\x1f{entry_ns}")

    def mo(ns: int, entry_ns: int) -> str:
        return _printf("\x1f".join(map(str, ("MO", ns, 4242, 4242, 1, 0, 0, 1, 4026531836, 4242, "mount", 0, 0,
                                             entry_ns))))

    decoder = BpftraceDecoder()
    lines = [mo(T0 + MS, T0), ma(T0 + 2 * MS, "/mnt/second"), mo(T0 + 3 * MS, T0 + 2 * MS), ma(T0, "/mnt/first")]
    mounts = [e["evt.arg.target"] for ln in lines for e in decoder.feed(ln)]
    assert sorted(mounts) == ["/mnt/first", "/mnt/second"]


def test_child_exec_waits_behind_its_parents_exec_still_missing_lines() -> None:
    """nginx (pid 4242) execs, forks `id` (pid 4243); nginx's entry line is in a ring read later than id's lines:
    id's exec and exit still come after nginx's exec, so the process tree knows id's parent."""
    child = [*_entry(T0 + 2 * MS, "/usr/bin/id", "id", tid=4243), *_exit(T0 + 3 * MS, T0 + 2 * MS, "/usr/bin/id",
                                                                           tid=4243)]
    as_child = ("\\u001f4243\\u001f4243\\u001f1\\u001f", "\\u001f4243\\u001f4243\\u001f4242\\u001f")  # ppid 4242
    child = [ln.replace(*as_child) for ln in child]
    child_exit = _procexit(T0 + 4 * MS, tid=4243).replace("\\u001f4243\\u001f4243\\u001f1\\u001f",
                                                          "\\u001f4243\\u001f4243\\u001f4242\\u001f")
    decoder = BpftraceDecoder()
    early = [*_exit(T0 + 1 * MS, T0, "/bin/nginx"), *child, child_exit]
    assert [e for ln in early for e in decoder.feed(ln)] == []
    out = [e for ln in _entry(T0, "/bin/nginx", "nginx", "-c", "id") for e in decoder.feed(ln)]
    assert [(e["evt.type"], e["proc.pid"]) for e in out] == [("execve", 4242), ("execve", 4243), ("procexit", 4243)]


def _open(ns: int, path: str, tid: int = 4242) -> str:
    head = (ns, tid, tid, 1, 0, 0, 1, 4026531836, tid, "kg-comm")
    return _printf("\x1f".join(map(str, ("O", *head, "tracepoint:syscalls:sys_exit_openat", 3, 0, 0, -100, 0, path))))


def test_new_programs_opens_wait_behind_its_exec_still_missing_lines() -> None:
    """tar execs (its exit line read first), opens a file, and its entry line comes later from another CPU's ring:
    the open is emitted after the exec, so rules on it see tar's name and arguments; an open of the old image
    before the exec's entry is not held."""
    decoder = BpftraceDecoder()
    before = [e for e in decoder.feed(_open(T0 - MS, "/etc/ld.so.cache"))]
    assert [e["fd.name"] for e in before] == ["/etc/ld.so.cache"]
    early = [*_exit(T0 + 1 * MS, T0, "/bin/tar"), _open(T0 + 2 * MS, "/root/.aws/credentials"), _procexit(T0 + 3 * MS)]
    assert [e for ln in early for e in decoder.feed(ln)] == []
    out = [e for ln in _entry(T0, "/bin/tar", "tar", "cf", "-") for e in decoder.feed(ln)]
    assert [e["evt.type"] for e in out] == ["execve", "openat", "procexit"]
    assert out[0]["proc.args"] == "cf -" and out[1]["fd.name"] == "/root/.aws/credentials"


@pytest.mark.parametrize("data", [
    "X\x1f1\x1f2\n",                         # separators only: read without the JSON parser
    "READY\n",
    'A\x1f/bin/sh\x1f-c\x1fecho "hi"\n',     # an escaped quote
    "A\x1fC:\\\\u001f\x1fx\n",              # a literal backslash before 'u001f' text
    "A\x1f\\\x1f\\u001f\n",                  # backslashes next to separators
    "XE\x1fPATH=/bin\\x00HOME=/\n",          # the environment's escaped NULs
    "A\x1fcaf\u00e9 \u2603\x1f\x01\n",       # non-ASCII, another control character
    "no newline at the end",
])
def test_plain_printf_reads_what_the_json_parser_reads(data: str) -> None:
    from kubeguard.sensors.ebpf_decode import _plain_printf

    for line in (json.dumps({"type": "printf", "data": data}),
                 json.dumps({"type": "printf", "data": data}, ensure_ascii=False)):
        fast = _plain_printf(line)
        if fast is not None:
            assert fast == json.loads(line)["data"].rstrip("\n")
    plain = data.endswith("\n") and all(c == "\x1f" or (" " <= c < "\x7f" and c not in '"\\') for c in data[:-1])
    assert (_plain_printf(json.dumps({"type": "printf", "data": data})) is not None) == plain


def _printf(data: str) -> str:
    return json.dumps({"type": "printf", "data": data + "\n"})


def _whole_exec(filename: str, cwd: str, argv: list[str], env: str = "", state: str = "", facts: int = 0,
                caps: tuple[int, int, int] = (0, 0, 0), cut: int = 0) -> str:
    """The compiled probe's E line: one successful exec."""
    return _bt_line("E", 0, 4294967295, 7, 136, 2, facts, *caps, filename, cwd, cut, len(argv), *argv, env, state)


def _split_exec(filename: str, cwd_names: list[str], argv: list[str], env: bytes | None = None,
                facts_line: str | None = None) -> list[str]:
    """The same exec as kubeguard.bt's lines: A and V (argv), XE (environment), XF (facts), X (exit), W (cwd;
    `cwd_names` from the root down)."""
    args = [*argv, "", "", ""]
    lines = [_bt_line("A", filename, *args[:3], int(len(argv) > 3))]
    for first in range(3, len(argv), 4):
        lines.append(_printf("\x1f".join(map(str, ("V", 4242, first, *(argv + [""] * 4)[first:first + 4],
                                                   int(len(argv) > first + 4))))))
    if env is not None:
        starts = [at if at + 64 <= len(env) else len(env) - 64 for at in range(0, 256, 64)]  # as execenv reads
        chunks = [bytes(env[at] if 0 <= at < len(env) else 0 for at in range(start, start + 64)) for start in starts]
        rendered = ["".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02x}" for b in c) for c in chunks]
        lines.append(_printf("\x1f".join(("XE", "4242", "0", str(len(env)), *rendered))))
    if facts_line is not None:
        lines.append(_printf(facts_line))
    lines.append(_bt_line("X", 0, 4294967295, 7, 136, 2))
    walk = [f"{name}|0" for name in reversed(cwd_names)] + ["/|1", "/|1", "/|1"]
    lines.append(_printf("\x1f".join(("W", "4242", "0", *walk[:3], "1"))))
    return lines


@pytest.mark.parametrize(("argv", "env"), [
    (["kg-tool"], None),
    (["kg-tool", "-x", 'say "hi"', "back\\slash"], b"A=1\0\0B=two words\0"),
    ([f"a{i}" for i in range(15)], b"ONLY=1"),  # argv at its cap: marked truncated
])
def test_whole_exec_line_reads_as_the_split_lines_do(argv: list[str], env: bytes | None) -> None:
    split = decode_lines(_split_exec("./kg-tool", ["app", "srv"], argv, env))
    whole = decode_lines([_whole_exec("./kg-tool", "/app/srv/", argv,
                                      "" if env is None else "A=1 B=two words" if env.startswith(b"A") else "ONLY=1",
                                      "" if env is None else "0", cut=int(len(argv) == 15))])
    assert len(split) == len(whole) == 1
    assert whole[0] == split[0]
    assert whole[0]["proc.exepath"] == "/app/srv/kg-tool"  # the relative name joined to the cwd
    assert ("proc.env" in whole[0]) == (env is not None)
    assert whole[0].get("_argv_truncated", False) == (len(argv) == 15)


def test_whole_exec_line_facts_and_memfd() -> None:
    caps = (1 << 21, 1 << 21, 0)
    (split,) = decode_lines(_split_exec("/proc/self/fd/3", ["tmp"], ["kg"],
                                        facts_line=f"XF\x1f4242\x1f{1 | 4 | 8}\x1f{caps[0]}\x1f{caps[1]}\x1f0"))
    (whole,) = decode_lines([_whole_exec("/proc/self/fd/3", "/tmp/", ["kg"], facts=1 | 4 | 8, caps=caps)])
    assert whole == split
    assert (whole["proc.is_exe_from_memfd"], whole["evt.arg.flags"], whole["thread.cap_effective"]) == (
        True, "EXE_FROM_MEMFD", "CAP_SYS_ADMIN")


def test_whole_exec_line_environment_states() -> None:
    # the last field's newline is the environment's, not the line's end
    (newline,) = decode_lines([_whole_exec("/bin/true", "/", ["true"], "B=\n", "0")])
    assert newline["proc.env"] == "B=\n" and "_env_truncated" not in newline
    (separator,) = decode_lines([_whole_exec("/bin/true", "/", ["true"], "S=a\x1fb\x1f", "0")])  # kept
    assert separator["proc.env"] == "S=a\x1fb\x1f" and separator["proc.args"] == ""
    (cut,) = decode_lines([_whole_exec("/bin/true", "/", ["true"], "A=1", "1")])
    assert cut["proc.env"] == "A=1" and cut["_env_truncated"] is True
    # too long for the line: the environment came on XE lines before it
    xe = _split_exec("/bin/true", [], ["true"], b"FROM_XE=1\0")[1]
    (from_lines,) = decode_lines([xe, _whole_exec("/bin/true", "/", ["true"], "", "x")])
    assert from_lines["proc.env"] == "FROM_XE=1"
    (none,) = decode_lines([_whole_exec("/bin/true", "/", ["true"])])
    assert "proc.env" not in none


def test_whole_exec_line_carries_every_argument_whole() -> None:
    """Unlike the split lines (15 arguments of 63 bytes, the first empty one ending argv), every argument."""
    argv = ["curl", "-d", "", *[f"--header=X-{i}: {'v' * 80}" for i in range(20)]]
    (event,) = decode_lines([_whole_exec("/usr/bin/curl", "/", argv)])
    assert event["proc.args"] == " ".join(argv[1:]) and "_argv_truncated" not in event
    (cut,) = decode_lines([_whole_exec("/usr/bin/curl", "/", argv, cut=1)])
    assert cut["_argv_truncated"] is True


@pytest.mark.parametrize("line", [
    _bt_line("E", 0, 4294967295, 7, 136, 2, 0, 0, 0, 0, "/bin/true", "/", 0, 513, *["a"] * 513, "", ""),  # argc
    _bt_line("E", 0, 4294967295, 7, 136, 2, 0, 0, 0, 0, "/bin/true", "/", 0, 2, "true"),  # fields missing
])
def test_malformed_whole_exec_line_is_counted_not_raised(line: str) -> None:
    decoder = BpftraceDecoder()
    assert decoder.feed(line) == [] and decoder.parse_errors == 1
