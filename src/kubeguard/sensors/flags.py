"""Render syscall arguments the way Falco prints them (flag names, errno names, capability names)."""

from __future__ import annotations

import errno

OPEN_FLAGS: tuple[tuple[int, str], ...] = (
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"), (0o40000, "O_DIRECT"), (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
    (0o20000000 | 0o200000, "O_TMPFILE"),
)
CLONE_FLAGS: tuple[tuple[int, str], ...] = (
    (0x00000100, "CLONE_VM"), (0x00000200, "CLONE_FS"), (0x00000400, "CLONE_FILES"),
    (0x00000800, "CLONE_SIGHAND"), (0x00020000, "CLONE_NEWNS"), (0x02000000, "CLONE_NEWCGROUP"),
    (0x04000000, "CLONE_NEWUTS"), (0x08000000, "CLONE_NEWIPC"), (0x10000000, "CLONE_NEWUSER"),
    (0x20000000, "CLONE_NEWPID"), (0x40000000, "CLONE_NEWNET"), (0x00000080, "CLONE_NEWTIME"),
    (0x00040000, "CLONE_SYSVSEM"),
)
MODE_BITS: tuple[tuple[int, str], ...] = (
    (0o1, "S_IXOTH"), (0o2, "S_IWOTH"), (0o4, "S_IROTH"), (0o10, "S_IXGRP"), (0o20, "S_IWGRP"), (0o40, "S_IRGRP"),
    (0o100, "S_IXUSR"), (0o200, "S_IWUSR"), (0o400, "S_IRUSR"), (0o1000, "S_ISVTX"), (0o2000, "S_ISGID"),
    (0o4000, "S_ISUID"),
)
UNLINKAT_FLAGS: tuple[tuple[int, str], ...] = ((0x200, "AT_REMOVEDIR"),)
LINKAT_FLAGS: tuple[tuple[int, str], ...] = ((0x400, "AT_SYMLINK_FOLLOW"), (0x1000, "AT_EMPTY_PATH"))
RENAMEAT2_FLAGS: tuple[tuple[int, str], ...] = ((1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"),
                                                (4, "RENAME_WHITEOUT"))
MEMFD_FLAGS: tuple[tuple[int, str], ...] = ((1, "MFD_CLOEXEC"), (2, "MFD_ALLOW_SEALING"), (4, "MFD_HUGETLB"),
                                            (8, "MFD_NOEXEC_SEAL"), (16, "MFD_EXEC"))
PTRACE_REQUESTS: dict[int, str] = {
    0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSR", 4: "PTRACE_POKETEXT",
    5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSR", 7: "PTRACE_CONT", 8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP",
    12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS", 14: "PTRACE_GETFPREGS", 15: "PTRACE_SETFPREGS",
    16: "PTRACE_ATTACH", 17: "PTRACE_DETACH", 24: "PTRACE_SYSCALL", 0x4200: "PTRACE_SETOPTIONS",
    0x4201: "PTRACE_GETEVENTMSG", 0x4202: "PTRACE_GETSIGINFO", 0x4203: "PTRACE_SETSIGINFO",
    0x4204: "PTRACE_GETREGSET", 0x4205: "PTRACE_SETREGSET", 0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT",
    0x4208: "PTRACE_LISTEN",
}
NS_TYPES: dict[int, str] = {0: "ALL", 0x00020000: "CLONE_NEWNS", 0x02000000: "CLONE_NEWCGROUP",
                            0x04000000: "CLONE_NEWUTS", 0x08000000: "CLONE_NEWIPC", 0x10000000: "CLONE_NEWUSER",
                            0x20000000: "CLONE_NEWPID", 0x40000000: "CLONE_NEWNET", 0x00000080: "CLONE_NEWTIME"}
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
L4_PROTOCOLS: dict[int, str] = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp", 132: "sctp", 136: "udp"}
ACCESS_MODES = ("O_RDONLY", "O_WRONLY", "O_RDWR")


def bit_names(value: int, table: tuple[tuple[int, str], ...], empty: str = "0") -> str:
    """`A|B` for the bits of `value` named in `table` (Falco's flag rendering)."""
    names = [name for bit, name in table if value & bit == bit]
    return "|".join(names) or empty


def open_flags(flags: int) -> str:
    """Falco-style open flags, access mode first: ``O_RDONLY|O_CLOEXEC``."""
    access = ACCESS_MODES[flags & 3] if flags & 3 < 3 else "O_ACCMODE"
    rest = bit_names(flags & ~3, OPEN_FLAGS, "")
    return f"{access}|{rest}" if rest else access


def mode_names(mode: int) -> str:
    """Falco's rendering of a permission mode, e.g. ``S_IXUSR|S_IWUSR|S_IRUSR|S_ISUID``."""
    return bit_names(mode & 0o7777, MODE_BITS)


def cap_names(mask: int) -> str:
    """Space-separated capability names set in a 64-bit capability mask."""
    return " ".join(name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1)


def errno_result(ret: int) -> str:
    """Falco's `evt.res`: ``SUCCESS`` or the errno name (``ECONNREFUSED``)."""
    if ret >= 0:
        return "SUCCESS"
    return errno.errorcode.get(-ret, f"E{-ret}")


def tty_nr(major: int, minor: int) -> int:
    """The tty number as /proc/PID/stat's tty_nr encodes it (0 = no terminal)."""
    if major == 0 and minor == 0:
        return 0
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
