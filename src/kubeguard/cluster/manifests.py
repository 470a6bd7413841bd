"""Read manifest files: YAML (multi-document) and JSON, each document with the line it starts on.

One job: turn files into `Document`s (the parsed value, its file and 1-based line, and for YAML
the composed node so callers can find the line of anything inside) and `LoadProblem`s for what
could not be read. A broken document is reported and the rest of the file is still read.
PyYAML's C loader (CSafeLoader) does the parsing; `kind: List` expansion happens in loader.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeguard.cluster.snapshot import LoadProblem, SourceRef

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


class SafeLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The C safe loader with tag resolution of plain scalars memoised (manifests repeat them a lot)."""

    _resolved: dict[tuple[str, bool], str] = {}

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and len(value) < 64:
            key = (value, implicit[0])
            tag = self._resolved.get(key)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(self._resolved) < 100_000:
                    self._resolved[key] = tag
            return tag
        return super().resolve(kind, value, implicit)

MANIFEST_SUFFIXES = frozenset({".yaml", ".yml", ".json"})
MAX_FILE_BYTES = 64 * 1024 * 1024
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

    `also` admits more files by path (a node's kubelet unit and environment files).
    """
    if path.is_file():
        return [path]
    if not path.exists():
        problems.append(LoadProblem(str(path), "no such file or directory"))
        return []
    if not path.is_dir():
        problems.append(LoadProblem(str(path), "not a regular file or directory"))
        return []
    found: list[Path] = []
    try:
        for child in sorted(path.rglob("*")):
            rel = child.relative_to(path).parts
            if any(part.startswith(".") for part in rel[:-1]) or rel[-1].startswith("."):
                continue
            if (child.suffix.lower() in MANIFEST_SUFFIXES or (also is not None and also(child))) \
                    and child.is_file():
                found.append(child)
    except OSError as exc:
        problems.append(LoadProblem(str(path), f"cannot list directory: {exc.strerror or exc}"))
    return found


def read_documents(path: Path, problems: list[LoadProblem]) -> Iterator[Document]:
    """Every document of one file; what cannot be read becomes a problem naming file:line."""
    name = str(path)
    text = read_text(path, problems)
    if text is None:
        return
    template = _TEMPLATE.search(text)
    if template:
        line = text.count("\n", 0, template.start()) + 1
        problems.append(LoadProblem(f"{name}:{line}", _TEMPLATE_HINT))
        return
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("{", "["):
        doc = _read_json(text, name, problems)
        if doc is not None:
            yield doc
        return
    yield from _read_yaml(text, name, problems)


def read_text(path: Path, problems: list[LoadProblem]) -> str | None:
    """A file's text; a file too large, unreadable, binary or not UTF-8 becomes a problem (None)."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.append(LoadProblem(name, f"file too large ({size // (1024 * 1024)} MiB > "
                                              f"{MAX_FILE_BYTES // (1024 * 1024)} MiB limit)"))
            return None
        data = path.read_bytes()
    except OSError as exc:
        problems.append(LoadProblem(name, f"cannot read: {exc.strerror or exc}"))
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
    yield from _read_yaml(text, source.file, problems, first_line=source.line or 1)


def _read_yaml(text: str, name: str, problems: list[LoadProblem], first_line: int = 1) -> Iterator[Document]:
    """Documents of a YAML stream: composed in one pass, or document by document when a part is broken."""
    nodes = _compose_all(text)
    if nodes is None:
        yield from _read_yaml_split(text, name, problems, first_line)
        return
    for node in nodes:
        line = first_line + node.start_mark.line
        try:
            value = construct(node)
        except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
            problems.append(LoadProblem(f"{name}:{line}", f"malformed YAML: {one_line(exc)}"))
            continue
        if value is not None:
            yield Document(value, SourceRef(name, line), node)


def _compose_all(text: str) -> list[yaml.Node] | None:
    """Every document's node (C parser), or None when the stream does not parse."""
    loader = SafeLoader(text)
    try:
        nodes = []
        while loader.check_node():
            nodes.append(loader.get_node())
        return nodes
    except (yaml.YAMLError, ValueError, RecursionError):
        return None
    finally:
        loader.dispose()


def _read_yaml_split(text: str, name: str, problems: list[LoadProblem], first_line: int) -> Iterator[Document]:
    """Split on document markers, so one broken document does not hide the others."""
    starts = [0] + [m.end() for m in _DOC_SEPARATOR.finditer(text)]
    ends = [m.start() for m in _DOC_SEPARATOR.finditer(text)] + [len(text)]
    line = first_line
    pos = 0
    for start, end in zip(starts, ends, strict=True):
        line += text.count("\n", pos, start)
        pos = start
        chunk = text[start:end]
        if not chunk.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in chunk.splitlines()):
            continue
        loader = SafeLoader(chunk)
        try:
            node = loader.get_single_node()
            if node is None:
                continue
            value = construct(node)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            # a mark at the end of the document (unclosed bracket) points past the last line
            last = len(chunk.rstrip().splitlines()) - 1
            at = line + min(mark.line, last) if mark else line
            why = _TEMPLATE_HINT if "{{" in chunk else f"malformed YAML: {exc.problem or exc.context}"
            problems.append(LoadProblem(f"{name}:{at}", why))
            continue
        except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
            problems.append(LoadProblem(f"{name}:{line}", f"malformed YAML: {one_line(exc)}"))
            continue
        finally:
            loader.dispose()
        if value is not None:
            yield Document(value, SourceRef(name, line + node.start_mark.line), node)


_STR, _INT, _BOOL, _NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "bool", "null"))
_MAP, _SEQ, _MERGE = (f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "merge"))


def construct(node: yaml.Node) -> Any:
    """Python value of a composed node, as PyYAML's SafeConstructor builds it, several times faster.

    The common tags (str, int, bool, null, map, seq) are built directly; anything else (floats,
    timestamps, merge keys, binary, sets) goes through SafeConstructor itself.
    """
    return _construct(node, {})


def _construct(node: yaml.Node, memo: dict[int, Any]) -> Any:
    done = memo.get(id(node))
    if done is not None:
        return done
    tag = node.tag
    if isinstance(node, yaml.ScalarNode):
        value = node.value
        if tag == _STR:
            return value
        if tag == _INT and value.isdigit() and (len(value) == 1 or value[0] != "0"):
            return int(value)
        if tag == _BOOL:
            return yaml.constructor.SafeConstructor.bool_values[value.lower()]
        if tag == _NULL:
            return None
        return _safe_construct(node)
    if isinstance(node, yaml.MappingNode) and tag == _MAP:
        if any(k.tag == _MERGE for k, _ in node.value):
            return _safe_construct(node)
        mapping: dict[Any, Any] = {}
        memo[id(node)] = mapping
        for key_node, value_node in node.value:
            key = _construct(key_node, memo)
            if not isinstance(key, str | int | float | bool | type(None)):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark)
            mapping[key] = _construct(value_node, memo)
        return mapping
    if isinstance(node, yaml.SequenceNode) and tag == _SEQ:
        items: list[Any] = []
        memo[id(node)] = items
        items.extend(_construct(child, memo) for child in node.value)
        return items
    return _safe_construct(node)


def _safe_construct(node: yaml.Node) -> Any:
    constructor = yaml.constructor.SafeConstructor()
    return constructor.construct_document(node)


def _read_json(text: str, name: str, problems: list[LoadProblem]) -> Document | None:
    """Parse JSON; for a List, also note the line each item starts on (C-speed, one pass)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(LoadProblem(f"{name}:{exc.lineno}", f"malformed JSON: {exc.msg}"))
        return None
    except RecursionError:
        problems.append(LoadProblem(name, "malformed JSON: nested too deeply"))
        return None
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
