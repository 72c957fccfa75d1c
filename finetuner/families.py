"""Registry of backbone families: for each, the head and the ordered blocks, as data.

Staging (`train: [layer4, head]`) and discriminative learning rates are lookups in this registry, never
`if arch.startswith(...)` branches. A family is registered with `@register_family`, which refuses duplicates.
Blocks are listed from the input side to the output side; `head` is always the last block.

Run nothing here; it is imported by the config validation and the training engine.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

HEAD = "head"
ALL = "all"


@dataclass(frozen=True)
class Family:
    """A backbone family: which torchvision names it covers and how its modules split into blocks."""

    name: str
    pattern: str  # regex matched against the full torchvision model name
    head: str  # dotted module path of the classifier layer that gets replaced
    block_modules: Callable[[nn.Module], dict[str, list[str]]]  # block name -> dotted module paths (no head)
    static_blocks: tuple[str, ...] | None = None  # block names when they do not depend on the depth variant

    def matches(self, arch: str) -> bool:
        return re.fullmatch(self.pattern, arch) is not None


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a family to the registry; a second family of the same name is a programming error."""
    if family.name in _FAMILIES:
        raise ValueError(f"backbone family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def family_for(arch: str) -> Family:
    """The family covering a torchvision model name, or a ValueError listing the supported families."""
    for family in _FAMILIES.values():
        if family.matches(arch):
            return family
    known = ", ".join(sorted(_FAMILIES))
    raise ValueError(f"architecture {arch!r} belongs to no registered family (known families: {known})")


def block_names(arch: str) -> list[str]:
    """Ordered block names for an architecture, input side first, `head` last."""
    family = family_for(arch)
    if family.static_blocks is not None:
        return [*family.static_blocks, HEAD]
    from torchvision.models import get_model  # deferred: constructing a model is only needed for dynamic families

    return [*family.block_modules(get_model(arch, weights=None)), HEAD]


def _resnet_blocks(model: nn.Module) -> dict[str, list[str]]:
    return {
        "stem": ["conv1", "bn1"],
        "layer1": ["layer1"],
        "layer2": ["layer2"],
        "layer3": ["layer3"],
        "layer4": ["layer4"],
    }


register_family(
    Family(
        name="resnet",
        pattern=r"(resnet\d+|resnext\d+_\d+x\d+d|wide_resnet\d+_\d+)",
        head="fc",
        block_modules=_resnet_blocks,
        static_blocks=("stem", "layer1", "layer2", "layer3", "layer4"),
    )
)
