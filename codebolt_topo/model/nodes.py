"""Node and topology models with the providers' settings: :class:`NodeSpec` plus each
provider's settings, checked by each provider's rules.

:class:`~codebolt_topo.model.topology.NodeSpec` holds what every node has. A node model adds the
fields of some providers' settings (in :func:`~codebolt_topo.model.discovery.rules_for` order)
and one validator that applies their rules, in this order, stopping at the first problem
(pydantic reports it at the node):

1. provider by provider: for the node's own, what it requires of the node (cloud-vm needs
   ``ssh``); for another, its settings when the node's provider does not accept them
   (``sandbox`` on a local node);
2. the checks of each provider's settings the node sets (a sandbox has no ``workspace``).

A node whose provider is not among them (the loader names it as unknown) cannot be asked; only
settings that no provider but their owner accepts are refused on it.

The loader validates a file with the providers it uses (:func:`rules_for_nodes`): those its
nodes name, or every installed one when a node writes a field those do not declare, so that the
field is refused by the rules of the provider that owns it, or a typo gets its suggestion.
Validating a local-only file thus imports no other provider's rules. The JSON schema and
anything else that must know every field use every installed provider. Models are built on
first use and kept per set of rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, cast

from pydantic import create_model, model_validator
from pydantic.fields import FieldInfo

from codebolt_topo.errors import ConfigError
from codebolt_topo.model.discovery import installed_rules, rules_for
from codebolt_topo.model.rules import NodeRules
from codebolt_topo.model.settings import NodeSettings
from codebolt_topo.model.topology import NodeName, NodeSpec, Topology

__all__ = [
    "launch_settings",
    "model_rules",
    "node_model",
    "provider_problem",
    "rules_for_nodes",
    "settings_fields",
    "topology_model",
]

_Rules = tuple[tuple[str, NodeRules], ...]
_DEFAULT_PROVIDER = NodeSpec.model_fields["provider"].default
_COMMON_FIELDS = frozenset(info.alias or name for name, info in NodeSpec.model_fields.items())


def node_model(rules: Mapping[str, NodeRules] | None = None) -> type[NodeSpec]:
    """:class:`NodeSpec` with the settings and rules of ``rules`` (every installed provider's
    when omitted)."""
    return _node_model(_key(rules))


def topology_model(rules: Mapping[str, NodeRules] | None = None) -> type[Topology]:
    """:class:`Topology` whose nodes are :func:`node_model` nodes."""
    return _topology_model(node_model(rules))


def settings_fields(rules: Mapping[str, NodeRules] | None = None) -> dict[str, type[NodeSettings]]:
    """Each node field the providers add, with the settings that declare it."""
    return _settings_fields(_key(rules))


def model_rules(spec: NodeSpec) -> Mapping[str, NodeRules]:
    """The providers' rules the model of ``spec`` was built with (none for a plain NodeSpec)."""
    return _MODEL_RULES.get(type(spec), {})


def rules_for_nodes(nodes: Mapping[str, Any]) -> dict[str, NodeRules]:
    """The providers a file's ``nodes`` (as parsed) need: those they name, or every installed
    one when a node writes a field neither :class:`NodeSpec` nor those providers declare."""
    named = {
        spec.get("provider", _DEFAULT_PROVIDER) if isinstance(spec, dict) else _DEFAULT_PROVIDER
        for spec in nodes.values()
    }
    rules = rules_for(name for name in named if isinstance(name, str))
    known = _COMMON_FIELDS | settings_fields(rules).keys()
    for spec in nodes.values():
        if isinstance(spec, dict) and not known.issuperset(spec):
            return installed_rules()
    return rules


def launch_settings(spec: NodeSpec) -> dict[str, Any]:
    """The providers' settings ``spec`` sets, as JSON data: changing them needs a new process or
    container (part of the node's launch hash)."""
    values: dict[str, Any] = {}
    for rules in model_rules(spec).values():
        if rules.settings is not None:
            values.update(rules.settings.launch_settings(spec))
    return values


def provider_problem(spec: NodeSpec, rules: Mapping[str, NodeRules]) -> str | None:
    """The first rule of ``rules`` that ``spec`` breaks (see the module's docstring for the
    order), or None."""
    own = rules.get(spec.provider)
    accepted = own.accepts if own is not None else _accepted_by_others(rules)
    for name, other in rules.items():
        if own is not None and name == spec.provider:
            problem = own.check_node(spec)
            if problem is not None:
                return problem
            continue
        settings = other.settings
        if settings is not None and name not in accepted:
            used = settings.set_fields(spec)
            if used:
                return settings.refusal.format(fields=", ".join(used))
    for other in rules.values():
        settings = other.settings
        if settings is not None and settings.set_fields(spec):
            problem = settings.check(spec)
            if problem is not None:
                return problem
    return None


def _accepted_by_others(rules: Mapping[str, NodeRules]) -> frozenset[str]:
    """Providers whose settings some other provider accepts: they may be right on a node whose
    provider is unknown (a typo in ``provider:``), while settings only their owner uses are
    wrong there whatever the provider meant."""
    return frozenset().union(*(other.accepts for other in rules.values()))


#: The rules each built node model applies (what launch_settings asks of a node).
_MODEL_RULES: dict[type[NodeSpec], Mapping[str, NodeRules]] = {}


def _key(rules: Mapping[str, NodeRules] | None) -> _Rules:
    return tuple((installed_rules() if rules is None else rules).items())


@cache
def _settings_fields(rules: _Rules) -> dict[str, type[NodeSettings]]:
    owners: dict[str, type[NodeSettings]] = {}
    for provider, node_rules in rules:
        settings = node_rules.settings
        if settings is None:
            continue
        for field in settings.fields():
            if field in _COMMON_FIELDS or field in owners:
                raise ConfigError(
                    f"provider {provider!r}: its setting {field!r} is already a node field"
                )
            owners[field] = settings
    return owners


@cache
def _node_model(rules: _Rules) -> type[NodeSpec]:
    fields: dict[str, tuple[Any, FieldInfo]] = {}
    for name, settings in _settings_fields(rules).items():
        info = settings.fields()[name]
        fields[name] = (info.annotation, info)
    by_name = dict(rules)

    def follow_provider_rules(node: NodeSpec) -> NodeSpec:
        problem = provider_problem(node, by_name)
        if problem is not None:
            raise ValueError(problem)
        return node

    model = cast(
        type[NodeSpec],
        create_model(
            "NodeSpec",
            __base__=NodeSpec,
            __module__=NodeSpec.__module__,
            __doc__=NodeSpec.__doc__,
            __validators__={
                "_follow_provider_rules": model_validator(mode="after")(follow_provider_rules)
            },
            **fields,  # type: ignore[call-overload]
        ),
    )
    _MODEL_RULES[model] = by_name
    return model


@cache
def _topology_model(node: type[NodeSpec]) -> type[Topology]:
    nodes = Topology.model_fields["nodes"]
    model = create_model(
        "Topology",
        __base__=Topology,
        __module__=Topology.__module__,
        __doc__=Topology.__doc__,
        nodes=(dict[NodeName, node], nodes),  # type: ignore[valid-type]
    )
    return cast(type[Topology], model)
