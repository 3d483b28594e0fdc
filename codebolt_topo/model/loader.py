"""Read ``topology.yaml`` into a validated :class:`Topology`, or explain everything wrong with it.

The loader is the file format's front door, so its errors are the ones users see most. It
collects every problem of a file (YAML structure, duplicate keys, schema, unknown providers) and
raises one :class:`~codebolt_topo.errors.TopologyError` whose issues read
``topology.yaml:12:5: nodes.trainer.provider: unknown provider 'dokcer' (did you mean …?)``.
Graph-level checks (unknown nodes in edges, shapes, ports) belong to :mod:`codebolt_topo.plan`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from codebolt_topo.errors import Location, TopologyError, ValidationIssue
from codebolt_topo.model.discovery import provider_names
from codebolt_topo.model.issues import did_you_mean, issues_from_error
from codebolt_topo.model.nodes import rules_for_nodes, topology_model
from codebolt_topo.model.rules import NodeRules
from codebolt_topo.model.source import (
    FieldPath,
    LazySourceMap,
    SourceMap,
    Span,
    format_path,
    plain_keys,
    to_plain,
)
from codebolt_topo.model.template import LineMap, is_template, render_template
from codebolt_topo.model.topology import Topology

__all__ = ["LoadedTopology", "SchemaError", "load_topology"]


@dataclass(frozen=True, slots=True)
class LoadedTopology:
    """A valid topology, where each of its parts was written (for later, located errors), and
    the rules of the providers it was validated with (the planner asks the same ones)."""

    topology: Topology
    path: Path
    source_map: SourceMap
    rules: Mapping[str, NodeRules] = field(default_factory=dict)


class SchemaError(TopologyError):
    """The loader's issues for a file that parsed into a mapping, with that mapping.

    The planner reads ``data`` to add what the well-formed parts already show (an edge naming a
    node that does not exist), so that one run reports every error of the file, not the
    loader's first and the graph's after they are fixed.
    """

    def __init__(
        self, issues: list[ValidationIssue], data: dict[str, Any], sources: SourceMap
    ) -> None:
        super().__init__(issues)
        self.data = data
        self.sources = sources


def load_topology(
    path: Path, text: str | None = None, *, providers: Iterable[str] | None = None
) -> LoadedTopology:
    """Parse and validate one topology file; raise :class:`TopologyError` with every issue.

    ``text`` skips reading ``path`` (editors, tests); locations still name ``path`` as given.
    ``providers`` replaces the installed provider names (tests, dry runs on another machine);
    the settings and rules nodes follow are always the installed providers' (those the file
    uses: :func:`~codebolt_topo.model.nodes.rules_for_nodes`).
    """
    file = str(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            issue = ValidationIssue(Location(file), "", f"cannot read: {reason}")
            raise TopologyError([issue]) from exc
    line_map: LineMap | None = None
    if is_template(path, text):
        text, line_map = render_template(file, text)
    try:
        return _load(path, file, text, providers)
    except TopologyError as error:
        if line_map is None:
            raise
        raise TopologyError([_in_template(issue, line_map) for issue in error.issues]) from None


def _in_template(issue: ValidationIssue, line_map: LineMap) -> ValidationIssue:
    """Point an issue found in the rendered text at the template line that produced it."""
    where = issue.location
    if where.line is None:
        return issue
    moved = Location(where.file, line_map.template_line(where.line), where.column)
    return ValidationIssue(moved, issue.field, f"{issue.message} (rendered line {where.line})")


def _load(path: Path, file: str, text: str, providers: Iterable[str] | None) -> LoadedTopology:
    sources: SourceMap
    root: Any = None
    data = _parse_fast(text)
    if data is not _UNPARSED:
        sources = LazySourceMap(file, partial(_spans_of, text, file))
    else:
        sources = SourceMap(file)
        data, root, issues = _parse(text, sources)
        if issues:
            raise TopologyError(issues)
    issues = _shape_of_document(data, sources)
    if issues:
        raise TopologyError(issues)
    installed = sorted(providers) if providers is not None else provider_names()
    issues = _duplicate_issues(root, sources) + _provider_issues(data, installed, sources)
    nodes = data.get("nodes")
    rules = rules_for_nodes(nodes if isinstance(nodes, dict) else {})
    topology: Topology | None = None
    try:
        topology = topology_model(rules).model_validate(data)
    except ValidationError as exc:
        issues += issues_from_error(exc, sources)
    if issues or topology is None:
        raise SchemaError(sorted(issues, key=_position), data, sources)
    return LoadedTopology(topology, path, sources, rules)


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    # Duplicates are found on the composed node tree instead, so all of them are reported.
    yaml.allow_duplicate_keys = True
    return yaml


_UNPARSED = object()


def _parse_fast(text: str) -> Any:
    """Plain data through ruamel's C parser (``ruamel.yaml.clib``), or ``_UNPARSED`` when that
    parser is missing or the text is anything but clean YAML (a syntax error, a duplicate key,
    an unknown tag): the round-trip pass then reports every problem with its position."""
    from ruamel.yaml import YAML, main
    from ruamel.yaml.error import YAMLError

    if getattr(main, "CParser", None) is None:
        return _UNPARSED
    try:
        return plain_keys(YAML(typ="safe", pure=False).load(text))
    except (YAMLError, ValueError):
        return _UNPARSED


def _spans_of(text: str, file: str) -> dict[FieldPath, Span]:
    """Every position of ``text``, by the round-trip pass (the file parsed cleanly before)."""
    sources = SourceMap(file)
    _parse(text, sources)
    return sources.spans


def _parse(text: str, sources: SourceMap) -> tuple[Any, Any, list[ValidationIssue]]:
    """(plain data, composed node tree, issues). The text is composed once: the node tree serves
    the duplicate-key check and is then constructed (YAML scanning is most of a big file's
    validate time)."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        yaml = _yaml()
        root = yaml.compose(text)
        raw: Any = yaml.constructor.construct_document(root) if root is not None else None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = (
            Location(sources.file, mark.line + 1, mark.column + 1)
            if mark
            else Location(sources.file)
        )
        problem = exc.problem or exc.context or "invalid YAML"
        context = f" ({exc.context})" if exc.problem and exc.context else ""
        return None, None, [ValidationIssue(location, "", f"invalid YAML: {problem}{context}")]
    except YAMLError as exc:
        return None, None, [ValidationIssue(Location(sources.file), "", f"invalid YAML: {exc}")]
    root_at = (raw.lc.line + 1, raw.lc.col + 1) if hasattr(raw, "lc") else (1, 1)
    sources.spans[()] = Span(None, root_at)
    return to_plain(raw, sources), root, []


def _shape_of_document(data: Any, sources: SourceMap) -> list[ValidationIssue]:
    if data is None:
        message = "the file is empty; a topology needs at least 'name' and 'nodes'"
    elif not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        message = f"expected a mapping with 'name' and 'nodes' at the top level, got {kind}"
    else:
        return []
    return [ValidationIssue(sources.locate(()), "", message)]


def _duplicate_issues(root: Any, sources: SourceMap) -> list[ValidationIssue]:
    """Every repeated mapping key: ruamel alone would stop at the first one."""
    from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

    issues: list[ValidationIssue] = []

    def walk(node: Node, path: FieldPath) -> None:
        if isinstance(node, MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in first_line and key != "<<":
                    what = "node name" if path == ("nodes",) else "key"
                    issues.append(
                        ValidationIssue(
                            Location(
                                sources.file,
                                key_node.start_mark.line + 1,
                                key_node.start_mark.column + 1,
                            ),
                            format_path((*path, key)),
                            f"duplicate {what} {key!r} (first defined at line {first_line[key]})",
                        )
                    )
                    continue
                first_line[key] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    if root is not None:
        walk(root, ())
    return issues


def _provider_issues(
    data: dict[str, Any], installed: list[str], sources: SourceMap
) -> list[ValidationIssue]:
    nodes = data.get("nodes")
    if not isinstance(nodes, dict):
        return []
    issues = []
    for name, spec in nodes.items():
        provider = spec.get("provider") if isinstance(spec, dict) else None
        if not isinstance(provider, str) or provider in installed:
            continue
        known = ", ".join(installed) or "none"
        hint = did_you_mean(provider, installed) or f" (installed: {known})"
        path = ("nodes", name, "provider")
        issues.append(
            ValidationIssue(
                sources.locate(path), format_path(path), f"unknown provider {provider!r}{hint}"
            )
        )
    return issues


def _position(issue: ValidationIssue) -> tuple[int, int]:
    return issue.location.line or 0, issue.location.column or 0
