"""Can each node be placed where the file puts it? Every unmet ``requires:`` at once.

This is the one planning check that needs providers (a provider knows what its machines offer),
so it runs in ``plan`` and ``apply``, not in ``validate``. Each problem names the file, line and
field of the requirement, the reason, and a hint.
"""

from __future__ import annotations

from collections.abc import Callable

from codebolt_topo.capabilities import HINTS, missing
from codebolt_topo.errors import TopologyError, ValidationIssue
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.plan.validate import ValidatedTopology

__all__ = ["check_requirements"]

Offers = Callable[[NodeSpec], tuple[frozenset[str], dict[str, str]]]


def check_requirements(validated: ValidatedTopology, offers_for: Callable[[str], Offers]) -> None:
    """Raise one :class:`TopologyError` listing every requirement no placement meets.

    ``offers_for(provider_name)`` returns that provider's ``offers`` function.
    """
    issues = []
    for name, spec in validated.topology.nodes.items():
        if not spec.requires:
            continue
        offered, reasons = offers_for(spec.provider)(spec)
        for need in missing(spec.requires, offered):
            index = spec.requires.index(need)
            family = need.split(":")[0]
            reason = reasons.get(family, f"provider {spec.provider!r} does not offer it")
            hint = HINTS.get(family, "declare it in capabilities if the machine has it")
            issues.append(
                ValidationIssue(
                    location=validated.source_map.locate(("nodes", name, "requires", index)),
                    field=f"nodes.{name}.requires[{index}]",
                    message=f"node {name!r} requires {need!r} but {reason}; hint: {hint}",
                )
            )
    if issues:
        raise TopologyError(issues)
