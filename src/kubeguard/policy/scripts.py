"""Which script file an interpreter's command line names: ``sh /app/run.sh``, ``python3 -u job.py``.

Only sh, ash, bash, dash, python3 (and python3.N), perl, ruby, node and php are recognised; a multi-call
binary (busybox, toybox: Alpine's /bin/sh) is the program argv[0] names, or argv[1] when it is called by its
own name. The script is the first operand after the interpreter's options, resolved against the process's
working directory (lexically: the file lives in the container's filesystem). No script is named (None) for
code given on the command line (``sh -c``, ``python3 -c``/``-m``, ``perl -e``/``-E``, ``ruby -e``,
``node -e``/``-p``, ``php -r``), for a script read from stdin (no operand or ``-``) and when the arguments
cannot be split; a file sourced by a running shell (``. file``) is
never an exec and is not seen here.

`ScriptRule` (a policy's ``spec.scripts`` entry) and `script_allowed` (the decision on one script) live
here, not in `document`, so that the exec guard's answerer process imports nothing heavy (no YAML).
"""

from __future__ import annotations

import fnmatch
import functools
import posixpath
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

SHELLS = frozenset({"sh", "ash", "bash", "dash"})
MULTICALL = frozenset({"busybox", "toybox"})  # one binary, many programs: which one runs is argv[0]'s name
_PYTHON = re.compile(r"python3(\.\d+)?")
# Options whose value is the next argument (so that value is not the script).
_SHELL_VALUE_OPTIONS = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})
_PYTHON_VALUE_OPTIONS = frozenset({"-W", "-X", "--check-hash-based-pycs"})
_PYTHON_CODE_OPTIONS = ("-c", "-m")
_CODE_OPTIONS = {"perl": ("-e", "-E"), "ruby": ("-e",), "node": ("-e", "-p", "--eval", "--print"), "php": ("-r",)}
_VALUE_OPTIONS = {"ruby": frozenset({"-I", "-r", "-C"}), "node": frozenset({"-r", "--require", "--import"}),
                  "php": frozenset({"-c", "-d", "-z"})}


@dataclass(frozen=True, slots=True)
class ScriptRule:
    """A script file (or pattern) an interpreter may run; interpreters are what learning saw (informative)."""

    path: str
    action: str = "allow"
    interpreters: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.path

    def matches(self, path: str) -> bool:
        return path == self.path or (is_pattern(self.path) and fnmatch.fnmatchcase(path, self.path))


def is_pattern(path: str) -> bool:
    """Whether a rule's path is a shell pattern (``*``, ``?``, ``[``)."""
    return "*" in path or "?" in path or "[" in path


def script_allowed(rules: Iterable[ScriptRule], path: str) -> bool:
    """Whether `rules` allow the script `path`: an allow rule matches it and no deny rule does."""
    matching = [r for r in rules if r.matches(path)]
    return bool(matching) and all(r.action != "deny" for r in matching)


def interpreter_kind(exepath: str) -> str | None:
    """``shell``, ``python``, ``perl``, ``ruby``, ``node`` or ``php`` for a recognised interpreter, else None."""
    name = exepath.rsplit("/", 1)[-1]
    if name in SHELLS:
        return "shell"
    if _PYTHON.fullmatch(name):
        return "python"
    if name in ("perl", "ruby", "node", "php"):
        return name
    return None


def applet(exepath: str, argv0: str, args: list[str]) -> tuple[str, list[str]]:
    """The program a multi-call binary runs and that program's arguments: argv[0]'s name (``sh`` for busybox
    exec'd as /bin/sh), or argv[1] when it is called by its own name (``busybox sh x.sh``); any other
    `exepath` as it is, with `args` (argv[1:])."""
    if posixpath.basename(exepath) not in MULTICALL:
        return exepath, args
    name = posixpath.basename(argv0)
    if not name:  # argv[0] unknown: which program runs is unknown too
        return exepath, args
    if name in MULTICALL:
        return (args[0], args[1:]) if args else (exepath, args)
    return name, args


def c_is_code(exepath: str) -> bool:
    """Whether ``exepath -c ...`` runs code given on the command line and no script file: a shell or python
    (perl, ruby and node take -c for a syntax check of a script, php for an ini file), or a multi-call binary
    (busybox: its shells take -c as code, its other programs run no script)."""
    return interpreter_kind(exepath) in ("shell", "python") or posixpath.basename(exepath) in MULTICALL


@functools.lru_cache(maxsize=4096)  # asked at every exec the policies check; a node runs few distinct programs
def runs_scripts(exepath: str) -> bool:
    """Whether an exec of `exepath` may run a script file: a recognised interpreter or a multi-call binary."""
    return interpreter_kind(exepath) is not None or posixpath.basename(exepath) in MULTICALL


def script_of(exepath: str, args: str, cwd: str, argv0: str = "") -> str | None:
    """The absolute path of the script `exepath` runs given its arguments `args` (argv[1:] joined by
    spaces, as the sensors report them), working directory `cwd` and `argv0` (which program a multi-call
    binary runs); None when it names none."""
    if not runs_scripts(exepath):  # most execs: no need to split the arguments
        return None
    try:
        argv = shlex.split(args)
    except ValueError:
        return None
    return script_of_argv(exepath, argv, cwd, argv0)


def script_of_argv(exepath: str, argv: list[str], cwd: str, argv0: str = "") -> str | None:
    """`script_of` for the exact argument vector `argv` (argv[1:], as /proc/PID/cmdline holds it)."""
    exepath, argv = applet(exepath, argv0, argv)
    kind = interpreter_kind(exepath)
    if kind is None:
        return None
    operand = _operand(kind, argv)
    if operand is None or operand == "-":
        return None
    if not operand.startswith("/"):
        if not cwd.startswith("/"):
            return None
        operand = posixpath.join(cwd, operand)
    return posixpath.normpath(operand)


# A variable that makes a program load code named in its environment (Falco's proc.env: the entries joined by
# spaces, so a value runs up to the next " NAME=").
_ENV_CODE = re.compile(r"(?:^| )(BASH_ENV|NODE_OPTIONS|RUBYOPT|LD_PRELOAD)=(.*?)(?= [A-Za-z_][A-Za-z0-9_]*=|$)",
                       re.S)
_ENV_CODE_MARKERS = ("BASH_ENV=", "NODE_OPTIONS=", "RUBYOPT=", "LD_PRELOAD=")
_NODE_LOADS = ("-r", "--require", "--import", "--loader", "--experimental-loader")


def env_code(exepath: str, env: str, cwd: str) -> list[tuple[str, str]]:
    """The code files an exec of `exepath` loads because of its environment `env` (proc.env), as (variable,
    absolute path): BASH_ENV's file for bash (read before any script or ``-c`` code), the modules NODE_OPTIONS
    ``--require``s, ``--import``s or ``--loader``s for node and RUBYOPT ``-r``s for ruby when named by a path,
    and LD_PRELOAD's shared objects named by a path for any program. Relative paths are resolved against `cwd`
    (dropped when it is unknown); module names (``dotenv/config``) and bare library names are not files here."""
    found: list[tuple[str, str]] = []
    if not any(marker in env for marker in _ENV_CODE_MARKERS):  # nearly every exec: no regex scan (~17 us)
        return found
    name = exepath.rsplit("/", 1)[-1]
    kind = interpreter_kind(exepath)
    for match in _ENV_CODE.finditer(env):
        var, value = match.group(1), match.group(2).strip()
        if var == "BASH_ENV":
            paths = [value] if name == "bash" and value else []
        elif var == "LD_PRELOAD":
            paths = [item for item in re.split(r"[: ]+", value) if "/" in item]
        else:
            try:
                words = shlex.split(value)
            except ValueError:
                words = value.split()
            loads = _NODE_LOADS if var == "NODE_OPTIONS" and kind == "node" else \
                ("-r",) if var == "RUBYOPT" and kind == "ruby" else ()
            paths = _option_values(words, loads)
            paths = [p for p in paths if p.startswith(("/", "./", "../"))]
        for path in paths:
            if not path.startswith("/"):
                if not cwd.startswith("/"):
                    continue
                path = posixpath.join(cwd, path)
            found.append((var, posixpath.normpath(path)))
    return found


def _option_values(words: list[str], options: tuple[str, ...]) -> list[str]:
    """The values of `options` in `words`: ``-r x``, ``--require=x`` and, for one-letter options, ``-rx``."""
    values: list[str] = []
    for i, word in enumerate(words):
        for option in options:
            if word == option and i + 1 < len(words):
                values.append(words[i + 1])
            elif word.startswith(option + "="):
                values.append(word[len(option) + 1:])
            elif len(option) == 2 and word.startswith(option) and len(word) > 2 and word[2] != "=":
                values.append(word[2:])
    return values


def _operand(kind: str, argv: list[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--":
            continue
        if not arg.startswith(("-", "+")) or arg in ("-", "+"):
            return arg
        if kind == "shell":
            if (arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]) or arg == "-s":
                return None  # -c: code on the command line; -s: commands from stdin
            skip = arg in _SHELL_VALUE_OPTIONS
        elif kind == "python":
            if arg.startswith(_PYTHON_CODE_OPTIONS):
                return None
            skip = arg in _PYTHON_VALUE_OPTIONS
        else:
            if arg.startswith(_CODE_OPTIONS[kind]):
                return None
            skip = arg in _VALUE_OPTIONS.get(kind, frozenset())
    return None
