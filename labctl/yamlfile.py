"""Load YAML safely and remember where every key and list item stands.

Only plain data is built (no tags that construct objects), duplicate keys are
errors, and the returned line map lets validation errors name a line. Every way
a file can go wrong -- bytes that are not UTF-8, characters YAML refuses, syntax,
undefined aliases, unknown tags, values a tag cannot read -- is a YamlProblem
with a line, never a PyYAML traceback.

Hostile files are bounded before they cost anything: a file larger than
MAX_BYTES is refused unread, and the document is counted node by node while it is
composed, with every alias counted at its expanded size, so nested aliases (a
"billion laughs" alias bomb) are refused after a few dozen events instead of
being expanded by the line index and the schema.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

import yaml

Path = tuple[str | int, ...]

# The largest lab an inventory can describe (64 hosts of 16 VMs, every field set) is
# about 80 KB and 8,000 nodes; a playbook is smaller still.
MAX_BYTES = 256 * 1024
MAX_NODES = 50_000  # with every alias expanded
MAX_DEPTH = 32  # an inventory nests 5 levels deep; PyYAML's composer recurses per level

_YAML_TAGS = "tag:yaml.org,2002:"


class YamlProblem(Exception):
    def __init__(self, line: int | None, message: str):
        self.line, self.message = line, message
        super().__init__(message)


@dataclass(frozen=True)
class LoadedYaml:
    data: Any
    lines: dict[Path, int]

    def line_of(self, path: Path) -> int | None:
        """The line of the deepest key on `path` that the file has."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def _line(mark) -> int:
    return mark.line + 1


def _tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAGS) :] if tag.startswith(_YAML_TAGS) else tag


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, counts the document as it composes it,
    and words every construction failure with the node's line."""

    def __init__(self, text: str):
        super().__init__(text)
        self._nodes = 0  # nodes composed so far, each alias counted at its expanded size
        self._depth = 0
        self._anchor_sizes: dict[str, int] = {}  # an anchor's expanded size, once composed

    def _count(self, nodes: int, mark, alias: str | None = None) -> None:
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            if alias is not None:
                raise YamlProblem(
                    _line(mark),
                    f"alias *{alias} expands the document past {MAX_NODES} values "
                    "(nested aliases, an 'alias bomb'?); refused",
                )
            raise YamlProblem(_line(mark), f"the document has more than {MAX_NODES} values; refused")

    def compose_node(self, parent, index):  # type: ignore[override]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self.anchors:  # an undefined one is PyYAML's ComposerError
                size = self._anchor_sizes.get(event.anchor)
                if size is None:  # the anchored node is still being composed: it contains itself
                    raise YamlProblem(
                        _line(event.start_mark), f"alias *{event.anchor} is inside its own anchor (a loop)"
                    )
                self._count(size, event.start_mark, alias=event.anchor)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlProblem(_line(event.start_mark), f"nested more than {MAX_DEPTH} levels deep; refused")
        before = self._nodes
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._count(1, event.start_mark)
        if getattr(event, "anchor", None) is not None:
            self._anchor_sizes[event.anchor] = self._nodes - before
        return node

    def construct_object(self, node, deep=False):  # type: ignore[override]
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError):
            # PyYAML's scalar constructors raise these for `!!int abc`, a 13th month, 5000 digits...
            shown = repr(node.value) if isinstance(node.value, str) else "this value"
            raise YamlProblem(
                _line(node.start_mark),
                f"cannot read {shown[:60]} as {_tag(node.tag)} (quote it if it is meant as text)",
            ) from None

    def construct_undefined(self, node):
        raise YamlProblem(
            _line(node.start_mark),
            f"YAML tag {_tag(node.tag)} is not allowed: only plain data "
            "(text, numbers, true/false, lists, mappings) is read",
        )

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _YAML_TAGS + "merge":  # `<<: *defaults`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise YamlProblem(_line(key_node.start_mark), "a mapping key must be plain text") from None
            if key in seen:
                raise YamlProblem(
                    _line(key_node.start_mark),
                    f"duplicate key {key!r} (first on line {seen[key]})",
                )
            seen[key] = _line(key_node.start_mark)
        return super().construct_mapping(node, deep=deep)  # merges `<<` keys first


_StrictLoader.add_constructor(None, _StrictLoader.construct_undefined)


def _index_lines(node: yaml.Node, path: Path, lines: dict[Path, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, str(key_node.value))
            lines[key_path] = key_node.start_mark.line + 1
            _index_lines(value_node, key_path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines)


def _too_large(size: int) -> YamlProblem:
    return YamlProblem(None, f"file is {size} bytes; refused unread (at most {MAX_BYTES // 1024} KiB)")


def read_text(path: str | FilePath) -> str:
    """A YAML file's text. Its size is checked before it is read (a pipe or device,
    which has none, is read no further than the limit); bytes that are not UTF-8 are a
    YamlProblem with their line. OSError (missing, unreadable) is the caller's to word."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_BYTES:
            raise _too_large(size)
        data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise YamlProblem(None, f"file is larger than {MAX_BYTES // 1024} KiB; refused")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        raise YamlProblem(
            data.count(b"\n", 0, exc.start) + 1,
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at column {exc.start - line_start + 1}",
        ) from None


def _compose_and_construct(text: str) -> LoadedYaml:
    loader = _StrictLoader(text)  # the Reader refuses control characters here already
    try:
        node = loader.get_single_node()
        if node is None:
            return LoadedYaml(None, {})
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    _index_lines(node, (), lines)
    return LoadedYaml(data, lines)


def load_yaml(text: str) -> LoadedYaml:
    size = len(text.encode(errors="surrogatepass"))
    if size > MAX_BYTES:
        raise _too_large(size)
    try:
        return _compose_and_construct(text)
    except yaml.reader.ReaderError as exc:
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise YamlProblem(
            text.count("\n", 0, exc.position) + 1,
            f"character U+{character:04X} is not allowed in YAML (a control character?)",
        ) from None
    except yaml.MarkedYAMLError as exc:  # scanner, parser, composer, constructor
        mark = exc.problem_mark or exc.context_mark
        raise YamlProblem(_line(mark) if mark else None, f"YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(None, f"YAML error: {exc}") from None
