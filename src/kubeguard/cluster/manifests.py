"""Read manifest files: YAML (multi-document) and JSON, each document with the line it starts on.

One job: turn files into `Document`s (the parsed value, its file and 1-based line, and for YAML
the composed node so callers can find the line of anything inside) and `LoadProblem`s for what
could not be read. A broken document is reported and the rest of the file is still read.
PyYAML's C loader (CSafeLoader) does the parsing; `kind: List` expansion happens in loader.py.
Every read stays within the bounds of `kubeguard.cluster.bounds` (size, depth, alias expansion,
numbers); duplicate mapping keys are kept (the last wins, as in Kubernetes) and reported.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeguard.cluster.bounds import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_INT_DIGITS,
    InputError,
    loads_json,
    out_of_range_message,
    read_bounded,
    too_deep_message,
)
from kubeguard.cluster.snapshot import LoadProblem, SourceRef

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


# PyYAML's resolver is unannotated in its stubs: its type, stated once.
_base_resolve: Callable[[Any, type, Any, tuple[bool, bool]], str] = _BaseLoader.resolve


class SafeLoader(_BaseLoader):
    """The C safe loader with tag resolution of plain scalars memoised (manifests repeat them a lot)."""

    _resolved: dict[tuple[str, bool], str] = {}

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and len(value) < 64:
            key = (value, implicit[0])
            tag = self._resolved.get(key)
            if tag is None:
                tag = _base_resolve(self, kind, value, implicit)
                if len(self._resolved) < 100_000:
                    self._resolved[key] = tag
            return tag
        return _base_resolve(self, kind, value, implicit)

MANIFEST_SUFFIXES = frozenset({".yaml", ".yml", ".json"})
_DOC_SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$|^\.\.\.[ \t]*$", re.M)
# Helm / Go templates: control lines, chart objects and template functions. A bare `{{ $labels }}`
# inside a ConfigMap (Prometheus alert text) is data, not templating, so it is not matched here.
_TEMPLATE = re.compile(
    r"^[ \t]*\{\{-?\s*(?:if|else|end|range|with|define|include|template|/\*)\b"
    r"|\{\{-?\s*\.(?:Values|Release|Chart|Capabilities|Files|Template)\b"
    r"|\{\{-?\s*(?:include|template|toYaml|tpl|required)\b",
    re.M,
)
_TEMPLATE_HINT = "templated file (Helm/Go `{{ }}`): render it first, e.g. `helm template`"


@dataclass(slots=True)
class Document:
    """One parsed document: its value, where it starts, and (YAML only) its composed node."""

    value: Any
    source: SourceRef
    node: yaml.Node | None = None
    item_lines: list[int] | None = None  # JSON `items` start lines, when the document is a List


def discover(path: Path, problems: list[LoadProblem], also: Callable[[Path], bool] | None = None) -> list[Path]:
    """Manifest files under `path` (a file is taken whatever its suffix), sorted; dot-dirs skipped.

    `also` admits more files by path (a node's kubelet unit and environment files). Symlinked
    directories are not followed; a directory that cannot be listed, a broken symlink and a symlink
    loop are problems naming them.
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        problems.append(LoadProblem(str(path), path_error(exc)))
        return []
    if not stat.S_ISDIR(mode):
        if stat.S_ISREG(mode):
            return [path]
        problems.append(LoadProblem(str(path), "not a regular file or directory"))
        return []
    found: list[Path] = []

    def unlisted(exc: OSError) -> None:
        where = exc.filename or str(path)
        problems.append(LoadProblem(str(where), f"cannot list directory: {exc.strerror or exc}"))

    for folder, dirs, files in os.walk(path, onerror=unlisted):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(folder)
        for name in sorted(files):
            child = base / name
            if name.startswith(".") or not (child.suffix.lower() in MANIFEST_SUFFIXES
                                            or (also is not None and also(child))):
                continue
            try:
                if stat.S_ISREG(child.stat().st_mode):
                    found.append(child)
            except OSError as exc:
                problems.append(LoadProblem(str(child), path_error(exc)))
    return sorted(found)


def path_error(exc: OSError) -> str:
    """What an OSError from stat/open says about a path, in a few words."""
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT:
        return "no such file or directory"
    return f"cannot read: {exc.strerror or exc}"


def read_documents(path: Path, problems: list[LoadProblem],
                   warnings: list[LoadProblem] | None = None) -> Iterator[Document]:
    """Every document of one file; what cannot be read becomes a problem naming file:line.

    What was read with a doubt (a duplicate key, a number out of range) goes to `warnings`
    (to `problems` when no list is given).
    """
    name = str(path)
    if warnings is None:
        warnings = problems
    text = read_text(path, problems)
    if text is None:
        return
    template = _TEMPLATE.search(text)
    if template:
        line = text.count("\n", 0, template.start()) + 1
        problems.append(LoadProblem(f"{name}:{line}", _TEMPLATE_HINT))
        return
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("{", "["):
        doc = _read_json(text, name, problems, warnings)
        if doc is not None:
            yield doc
        return
    yield from _read_yaml(text, name, problems, warnings=warnings)


def read_text(path: Path, problems: list[LoadProblem]) -> str | None:
    """A file's text; a file too large, unreadable, binary or not UTF-8 becomes a problem (None)."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.append(LoadProblem(name, f"file too large ({size // (1024 * 1024)} MiB > "
                                              f"{MAX_FILE_BYTES // (1024 * 1024)} MiB limit)"))
            return None
        data = read_bounded(path)
    except InputError as exc:
        problems.append(LoadProblem(name, exc.message))
        return None
    except OSError as exc:
        problems.append(LoadProblem(name, path_error(exc)))
        return None
    if b"\x00" in data[:8192]:
        problems.append(LoadProblem(name, "binary file, not a manifest"))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problems.append(LoadProblem(f"{name}:{line}", "not UTF-8 text (binary file?)"))
        return None


def read_embedded(text: str, source: SourceRef, problems: list[LoadProblem]) -> Iterator[Document]:
    """Documents of YAML embedded as a string (kind's kubeadmConfigPatches) starting at `source`."""
    yield from _read_yaml(text, source.file, problems, first_line=source.line or 1, warnings=problems)


def _read_yaml(text: str, name: str, problems: list[LoadProblem], first_line: int = 1,
               warnings: list[LoadProblem] | None = None) -> Iterator[Document]:
    """Documents of a YAML stream, composed one at a time (a node tree is many times the text's size).

    When the stream stops parsing, the rest is read document by document (split on `---`), so one
    broken document does not hide the others; documents already read are not read twice.
    """
    warnings = problems if warnings is None else warnings
    loader = SafeLoader(text)
    last = -1  # 0-based line of the last document read in stream mode
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # check_node() said a document follows
                break
            last = node.start_mark.line
            document = _document(node, name, first_line, problems, warnings)
            if document is not None:
                yield document
    except (yaml.YAMLError, ValueError, RecursionError):
        loader.dispose()
        yield from _read_yaml_split(text, name, problems, warnings, first_line, skip_to=first_line + last)
    finally:
        loader.dispose()


def _document(node: yaml.Node, name: str, base: int, problems: list[LoadProblem],
              warnings: list[LoadProblem]) -> Document | None:
    """The Document of one composed node (`base`: the file line of the text's first line), or None."""
    builder = Builder()
    try:
        value = builder.build(node)
    except InputError as exc:
        problems.append(LoadProblem(f"{name}:{base + exc.line}", exc.message))
        return None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        problems.append(LoadProblem(f"{name}:{base + node.start_mark.line}", f"malformed YAML: {one_line(exc)}"))
        return None
    finally:
        for warning in builder.warnings:
            warnings.append(LoadProblem(f"{name}:{base + warning.line}", warning.message))
    if value is None:
        return None
    return Document(value, SourceRef(name, base + node.start_mark.line), node)


def _read_yaml_split(text: str, name: str, problems: list[LoadProblem], warnings: list[LoadProblem],
                     first_line: int, skip_to: int = 0) -> Iterator[Document]:
    """Split on document markers, so one broken document does not hide the others.

    Parts starting at or before line `skip_to` were read already and are skipped.
    """
    starts = [0] + [m.end() for m in _DOC_SEPARATOR.finditer(text)]
    ends = [m.start() for m in _DOC_SEPARATOR.finditer(text)] + [len(text)]
    line = first_line
    pos = 0
    for start, end in zip(starts, ends, strict=True):
        line += text.count("\n", pos, start)
        pos = start
        if line <= skip_to:
            continue
        chunk = text[start:end]
        if not chunk.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in chunk.splitlines()):
            continue
        loader = SafeLoader(chunk)
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            # a mark at the end of the document (unclosed bracket) points past the last line
            last = len(chunk.rstrip().splitlines()) - 1
            at = line + min(mark.line, last) if mark else line
            why = _TEMPLATE_HINT if "{{" in chunk else f"malformed YAML: {exc.problem or exc.context}"
            problems.append(LoadProblem(f"{name}:{at}", why))
            continue
        except (yaml.YAMLError, ValueError, RecursionError) as exc:
            problems.append(LoadProblem(f"{name}:{line}", f"malformed YAML: {one_line(exc)}"))
            continue
        finally:
            loader.dispose()
        if node is None or line + node.start_mark.line <= skip_to:
            continue
        document = _document(node, name, line, problems, warnings)
        if document is not None:
            yield document


_STR, _INT, _BOOL, _NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "bool", "null"))
_MAP, _SEQ, _MERGE = (f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "merge"))
_BOOL_VALUES = yaml.constructor.SafeConstructor.bool_values
_INTERN_MAX = 64  # longer strings rarely repeat
_MAX_INT_TEXT = 2 + 64 + 16  # sign, prefix, 64 binary digits and a few `_` separators


def construct(node: yaml.Node) -> Any:
    """Python value of a composed node within the bounds (raises InputError); see `Builder`."""
    return Builder().build(node)


class Builder:
    """Python values of composed YAML nodes, as PyYAML's SafeConstructor builds them, several times faster.

    The common tags (str, int, bool, null, map, seq, merge keys) are built here; anything else
    (floats, timestamps, binary, sets) goes through SafeConstructor itself. Within the bounds of
    `kubeguard.cluster.bounds`: nesting deeper than MAX_DEPTH (aliases included), aliases bringing in
    more than MAX_ALIAS_NODES nodes in all, and an alias to a node that contains it raise InputError;
    an integer beyond int64 becomes None and a duplicate key keeps the last value, each with a
    warning. `InputError.line` is 0-based in the composed text.
    """

    __slots__ = ("expanded", "memo", "sizes", "warnings")

    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}
        self.expanded = 0
        self.sizes: dict[int, tuple[int, int]] = {}
        self.warnings: list[InputError] = []

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        done = self.memo.get(id(node))
        if done is not None:
            self._alias(node, depth)
            return done
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            value = node.value
            if tag == _STR:
                # one object per distinct short string: keys and names repeat in every document of a big file
                return sys.intern(value) if len(value) <= _INTERN_MAX else value
            if tag == _INT:
                return self._int(node)
            if tag == _BOOL:
                return _BOOL_VALUES[value.lower()]
            if tag == _NULL:
                return None
            return _safe_construct(node)
        if depth >= MAX_DEPTH:
            raise InputError(too_deep_message(), node.start_mark.line)
        if isinstance(node, yaml.MappingNode) and tag == _MAP:
            mapping: dict[Any, Any] = {}
            self.memo[id(node)] = mapping
            merged = None
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE:
                    merged = self._merge(value_node, depth, merged)
                    continue
                key = self.build(key_node, depth + 1)
                if not isinstance(key, str | int | float | bool | type(None)):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark)
                if key in mapping:
                    self.warnings.append(InputError(f"duplicate key {str(key)[:60]!r}: the last one is used",
                                                    key_node.start_mark.line))
                mapping[key] = self.build(value_node, depth + 1)
            if merged is not None:
                for key, value in merged.items():
                    mapping.setdefault(key, value)
            return mapping
        if isinstance(node, yaml.SequenceNode) and tag == _SEQ:
            items: list[Any] = []
            self.memo[id(node)] = items
            items.extend([self.build(child, depth + 1) for child in node.value])
            return items
        self._alias(node, depth, count=False)  # other tags (!!set, !!omap): bound what SafeConstructor walks
        return _safe_construct(node)

    def _int(self, node: yaml.ScalarNode) -> int | None:
        value = node.value
        if value.isdigit() and (len(value) == 1 or value[0] != "0"):
            if len(value) <= MAX_INT_DIGITS:
                return int(value)
            number: int | None = None
        else:
            constructed = _safe_construct(node) if len(value) <= _MAX_INT_TEXT else None
            number = constructed if isinstance(constructed, int) else None
            if number is not None and -(2**63) <= number < 2**63:
                return number
        self.warnings.append(InputError(out_of_range_message(sum(c.isdigit() for c in value)),
                                        node.start_mark.line))
        return None

    def _merge(self, node: yaml.Node, depth: int, merged: dict[Any, Any] | None) -> dict[Any, Any]:
        """Keys of a merge key's value (a mapping or a list of them); earlier sources win, as in PyYAML."""
        value = self.build(node, depth + 1)
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(source, dict) for source in sources):
            raise InputError("merge key `<<` expects a mapping or a list of mappings", node.start_mark.line)
        result: dict[Any, Any] = {}
        for source in reversed(sources):
            result.update(source)
        if merged is not None:
            merged.update(result)
            return merged
        return result

    def _alias(self, node: yaml.Node, depth: int, count: bool = True) -> None:
        """Account for a node reached again through an alias: its whole expansion counts."""
        size, height = self._measure(node)
        if count:
            self.expanded += size
        if self.expanded > MAX_ALIAS_NODES or (not count and size > MAX_ALIAS_NODES):
            raise InputError(f"YAML aliases expand to more than {MAX_ALIAS_NODES:,} nodes (alias bomb?): refused",
                             node.start_mark.line)
        if depth + height > MAX_DEPTH:
            raise InputError(too_deep_message() + " (through aliases)", node.start_mark.line)

    def _measure(self, root: yaml.Node) -> tuple[int, int]:
        """Expanded node count and height of `root` (aliases counted each time); raises on a cycle."""
        sizes = self.sizes
        visiting: set[int] = set()
        stack: list[tuple[yaml.Node, bool]] = [(root, False)]
        while stack:
            node, finished = stack.pop()
            key = id(node)
            if key in sizes:
                continue
            if isinstance(node, yaml.ScalarNode):
                sizes[key] = (1, 0)
                continue
            children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) \
                else node.value
            if finished:
                visiting.discard(key)
                measured = [sizes[id(child)] for child in children]
                sizes[key] = (1 + sum(s for s, _ in measured), 1 + max((h for _, h in measured), default=0))
                continue
            if key in visiting:
                raise InputError("YAML alias refers to a node that contains it (recursive): refused",
                                 node.start_mark.line)
            visiting.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
        return sizes[id(root)]


def _safe_construct(node: yaml.Node) -> Any:
    constructor = yaml.constructor.SafeConstructor()
    return constructor.construct_document(node)


def _read_json(text: str, name: str, problems: list[LoadProblem], warnings: list[LoadProblem]) -> Document | None:
    """Parse JSON; for a List, also note the line each item starts on (C-speed, one pass)."""
    try:
        value, number_warnings = loads_json(text)
    except json.JSONDecodeError as exc:
        problems.append(LoadProblem(f"{name}:{exc.lineno}", f"malformed JSON: {exc.msg}"))
        return None
    except InputError as exc:
        problems.append(LoadProblem(f"{name}:{exc.line}" if exc.line else name, exc.message))
        return None
    warnings.extend(LoadProblem(f"{name}:{w.line}", w.message) for w in number_warnings)
    start = len(text) - len(text.lstrip())
    doc = Document(value, SourceRef(name, text.count("\n", 0, start) + 1))
    if isinstance(value, dict) and isinstance(value.get("items"), list):
        doc.item_lines = _json_item_lines(text, start)
    return doc


def _json_item_lines(text: str, start: int) -> list[int] | None:
    """Line of each element of the top-level object's `items` array; None if it cannot be walked."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")

    def skip(i: int) -> int:
        return ws.match(text, i).end()  # type: ignore[union-attr]

    try:
        i = skip(start + 1)
        while i < len(text) and text[i] != "}":
            key, i = decoder.raw_decode(text, i)
            i = skip(skip(i) + 1)  # past ':'
            if key != "items":
                _, i = decoder.raw_decode(text, i)
            else:
                lines: list[int] = []
                i = skip(i + 1)  # past '['
                line, pos = 1, 0
                while text[i] != "]":
                    line += text.count("\n", pos, i)
                    pos = i
                    lines.append(line)
                    _, i = decoder.raw_decode(text, i)
                    i = skip(i)
                    if text[i] == ",":
                        i = skip(i + 1)
                return lines
            i = skip(i)
            if text[i] == ",":
                i = skip(i + 1)
    except (ValueError, IndexError):
        return None
    return None


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def node_at(node: yaml.Node | None, *path: str | int, partial: bool = False) -> yaml.Node | None:
    """The node at `path` (mapping keys and list indexes) inside a composed node.

    With `partial`, the deepest node found along the path instead of None when a step is missing.
    """
    current = node
    for step in path:
        nxt = None
        if isinstance(step, int) and isinstance(current, yaml.SequenceNode):
            if 0 <= step < len(current.value):
                nxt = current.value[step]
        elif isinstance(step, str) and isinstance(current, yaml.MappingNode):
            nxt = next((v for k, v in current.value if isinstance(k, yaml.ScalarNode) and k.value == step), None)
        if nxt is None:
            return current if partial else None
        current = nxt
    return current


def node_line(node: yaml.Node | None, base: SourceRef, *path: str | int) -> SourceRef:
    """Where the value at `path` inside a composed document node starts (file and line).

    `base` is where the document starts; falls back to the deepest node found along the path.
    """
    found = node_at(node, *path, partial=True)
    if node is None or found is None:
        return base
    return SourceRef(base.file, base.line - node.start_mark.line + found.start_mark.line)


def field_source(source: SourceRef, *path: str | int) -> SourceRef:
    """Where the field at `path` inside the object read at `source` sits (file:line), read again from its file.

    For objects of a `kind: List` the path is taken inside the list item; where the line cannot be
    found (JSON, a file changed since), the object's own line.
    """
    if not source.line:
        return source
    problems: list[LoadProblem] = []
    for doc in read_documents(Path(source.file), problems):
        if doc.source == source:
            return node_line(doc.node, doc.source, *path)
        items = doc.value.get("items") if isinstance(doc.value, dict) else None
        if isinstance(items, list):
            for index in range(len(items)):
                line = doc.item_lines[index] if doc.item_lines and index < len(doc.item_lines) else None
                where = SourceRef(doc.source.file, line) if line else node_line(doc.node, doc.source, "items", index)
                if where == source:
                    return node_line(doc.node, doc.source, "items", index, *path)
    return source
