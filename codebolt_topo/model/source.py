"""Where each value of a YAML document was written: the bridge from data paths to file:line:col.

Validation happens on plain Python data, far from the YAML text, yet every error must point at
the line and column the user wrote. The :class:`SourceMap` keeps one :class:`Span` per data path
(``("edges", 2, "fan-out", "leaves", 0)``), so any later stage (pydantic errors, graph checks)
can turn a path back into a :class:`~codebolt_topo.errors.Location`.

Paths are tuples of mapping keys (``str``) and sequence indexes (``int``); mapping keys are
always strings because :func:`to_plain` stringifies them, so the two never mix up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codebolt_topo.errors import Location

__all__ = [
    "FieldPath",
    "LazySourceMap",
    "SourceMap",
    "Span",
    "format_path",
    "parse_path",
    "plain_keys",
    "to_plain",
]

FieldPath = tuple[str | int, ...]

_PART = re.compile(r"\[(\d+)\]|\.?([^.\[]+)")


def format_path(path: FieldPath) -> str:
    """``("edges", 2, "fan-out", "leaves", 0)`` → ``edges[2].fan-out.leaves[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def parse_path(text: str) -> FieldPath:
    """Inverse of :func:`format_path` for paths whose keys hold no ``.`` or ``[``."""
    return tuple(int(index) if index else key for index, key in _PART.findall(text))


@dataclass(frozen=True, slots=True)
class Span:
    """Where one entry was written, 1-based; ``key`` is None for sequence items and the root."""

    key: tuple[int, int] | None
    value: tuple[int, int]


class SourceMap:
    """Maps data paths of one document to the positions they were written at."""

    def __init__(self, file: str, spans: dict[FieldPath, Span] | None = None) -> None:
        self.file = file
        self._spans: dict[FieldPath, Span] = dict(spans or {})

    @property
    def spans(self) -> dict[FieldPath, Span]:
        return self._spans

    def locate(self, path: FieldPath | str, *, key: bool = False) -> Location:
        """Location of ``path``, or of its nearest written ancestor when the path itself is not.

        With ``key=True`` the location is that of the mapping key rather than of its value
        (used for unknown fields, duplicate keys and invalid names).
        """
        parts = parse_path(path) if isinstance(path, str) else path
        for length in range(len(parts), -1, -1):
            span = self.spans.get(parts[:length])
            if span is None:
                continue
            line, column = span.key if key and span.key and length == len(parts) else span.value
            return Location(self.file, line, column)
        return Location(self.file)


class LazySourceMap(SourceMap):
    """A source map whose positions are found only when first asked for.

    Positions need ruamel's round-trip parser, which is pure Python and about seven times
    slower than its C parser. A valid file never needs them, so the loader parses with the C
    parser and leaves ``build`` (the round-trip pass) to the first error that must point at a line.
    """

    def __init__(self, file: str, build: Callable[[], dict[FieldPath, Span]]) -> None:
        super().__init__(file)
        self._build: Callable[[], dict[FieldPath, Span]] | None = build

    @property
    def spans(self) -> dict[FieldPath, Span]:
        if self._build is not None:
            build, self._build = self._build, None
            self._spans.update(build())
        return self._spans


def to_plain(node: Any, sources: SourceMap, path: FieldPath = ()) -> Any:
    """Convert ruamel round-trip data into plain dicts, lists and scalars, recording spans.

    ruamel's scalar subclasses (ScalarInt, ScalarBoolean, …) would otherwise leak into pydantic
    and into error messages; their positions are read from the containers' ``lc`` records.
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        plain: dict[str, Any] = {}
        for raw_key, value in node.items():
            key = _plain_key(raw_key)
            child = (*path, key)
            try:
                key_at = _one_based(node.lc.key(raw_key))
                # An empty value (``a:``) has no position of its own; ruamel reports the next
                # token's, which may be lines away, so point at the key instead.
                value_at = key_at if value is None else _one_based(node.lc.value(raw_key))
            except (KeyError, TypeError):  # merged (``<<:``) keys carry no position of their own
                key_at, value_at = None, sources.spans.get(path, Span(None, (1, 1))).value
            sources.spans.setdefault(child, Span(key_at, value_at))
            plain[key] = to_plain(value, sources, child)
        return plain
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            child = (*path, index)
            try:
                item_at = _one_based(node.lc.item(index))
            except (KeyError, TypeError):
                item_at = sources.spans.get(path, Span(None, (1, 1))).value
            sources.spans.setdefault(child, Span(None, item_at))
            items.append(to_plain(value, sources, child))
        return items
    return _plain_scalar(node)


def plain_keys(value: Any) -> Any:
    """Plain data from ruamel's safe loader with every mapping key a string, as :func:`to_plain`
    makes them; raises ``ValueError`` when two keys of one mapping become the same string (``1``
    and ``"1"``): the round-trip pass reports that as a duplicate, with its line."""
    if isinstance(value, dict):
        plain: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = _plain_key(raw_key)
            if key in plain:
                raise ValueError(f"duplicate key {key!r}")
            plain[key] = plain_keys(item)
        return plain
    if isinstance(value, list):
        return [plain_keys(item) for item in value]
    return value


def _plain_key(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    scalar = _plain_scalar(key)
    if isinstance(scalar, bool):
        return "true" if scalar else "false"
    return "null" if scalar is None else str(scalar)


def _plain_scalar(value: Any) -> Any:
    from ruamel.yaml.scalarbool import ScalarBoolean

    if isinstance(value, ScalarBoolean):
        return bool(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    tagged = getattr(value, "value", None)  # TaggedScalar: keep the text, ignore the tag
    if isinstance(tagged, str):
        return tagged
    return value


def _one_based(position: tuple[int, int]) -> tuple[int, int]:
    line, column = position
    return line + 1, column + 1
