"""Registry of backbone families: for each, the head and the ordered blocks, as data.

Staging (`train: [layer4, head]`) and discriminative learning rates are lookups in this registry, never
`if arch.startswith(...)` branches. A family is registered with `@register_family`, which refuses duplicates.
Blocks are listed from the input side to the output side; `head` is always the last block. Each block is a tuple
of dotted name prefixes (modules or bare parameters such as ViT's `class_token`) of the torchvision model, derived
from the architecture name alone, so config validation never has to construct a model.

Run nothing here; it is imported by the config validation and the training engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

HEAD = "head"
ALL = "all"

Blocks = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Family:
    """A backbone family: which torchvision names it covers and how its parameters split into blocks."""

    name: str
    pattern: str  # regex matched against the full torchvision model name
    head: str  # dotted module path of the classifier layer that gets replaced
    blocks: Callable[[str], Blocks]  # arch -> ordered block name -> dotted prefixes (head excluded)

    def matches(self, arch: str) -> bool:
        return re.fullmatch(self.pattern, arch) is not None


_FAMILIES: dict[str, Family] = {}


def register_family(name: str, pattern: str, head: str) -> Callable[[Callable[[str], Blocks]], Callable[[str], Blocks]]:
    """Decorator: register the decorated `arch -> blocks` function as a family; a second `name` is refused."""

    def decorate(blocks: Callable[[str], Blocks]) -> Callable[[str], Blocks]:
        if name in _FAMILIES:
            raise ValueError(f"backbone family {name!r} is already registered")
        _FAMILIES[name] = Family(name=name, pattern=pattern, head=head, blocks=blocks)
        return blocks

    return decorate


def families() -> dict[str, Family]:
    """A copy of the registry, by family name."""
    return dict(_FAMILIES)


def family_for(arch: str) -> Family:
    """The family covering a torchvision model name, or a ValueError listing the supported families."""
    for family in _FAMILIES.values():
        if family.matches(arch):
            return family
    known = ", ".join(sorted(_FAMILIES))
    raise ValueError(f"architecture {arch!r} belongs to no registered family (known families: {known})")


def block_prefixes(arch: str) -> Blocks:
    """Ordered block name -> dotted prefixes, input side first, `head` last."""
    family = family_for(arch)
    return {**family.blocks(arch), HEAD: (family.head,)}


def block_names(arch: str) -> list[str]:
    """Ordered block names for an architecture, input side first, `head` last."""
    return list(block_prefixes(arch))


def _numbered(prefix: str, first: int, last: int, name: str = "block") -> Blocks:
    return {f"{name}{i - first + 1}": (f"{prefix}.{i}",) for i in range(first, last + 1)}


@register_family("resnet", r"(resnet\d+|resnext\d+_\d+x\d+d|wide_resnet\d+_\d+)", head="fc")
def _resnet(arch: str) -> Blocks:
    return {"stem": ("conv1", "bn1"), **{f"layer{i}": (f"layer{i}",) for i in range(1, 5)}}


@register_family("regnet", r"regnet_[xy]_\d+(_\d+)?(mf|gf)", head="fc")
def _regnet(arch: str) -> Blocks:
    return {"stem": ("stem",), **{f"block{i}": (f"trunk_output.block{i}",) for i in range(1, 5)}}


# features.0 is the stem conv, the last features entry the 1x1 "top" conv; in between, one entry per stage.
_EFFICIENTNET_STAGES = {"efficientnet_v2_s": 6, "efficientnet_v2_m": 7, "efficientnet_v2_l": 7}


@register_family("efficientnet", r"efficientnet_(b[0-7]|v2_[sml])", head="classifier.1")
def _efficientnet(arch: str) -> Blocks:
    stages = _EFFICIENTNET_STAGES.get(arch, 7)
    return {"stem": ("features.0",), **_numbered("features", 1, stages, "stage"), "top": (f"features.{stages + 1}",)}


# features.0 stem, then one inverted-residual block per entry, then the last 1x1 conv (plus the pre-head Linear).
_MOBILENET = {
    "mobilenet_v2": (17, ()),
    "mobilenet_v3_small": (11, ("classifier.0",)),
    "mobilenet_v3_large": (15, ("classifier.0",)),
}


@register_family("mobilenet_v3", r"mobilenet_v3_(small|large)", head="classifier.3")
def _mobilenet_v3(arch: str) -> Blocks:
    return _mobilenet(arch)


@register_family("mobilenet_v2", r"mobilenet_v2", head="classifier.1")
def _mobilenet_v2(arch: str) -> Blocks:
    return _mobilenet(arch)


def _mobilenet(arch: str) -> Blocks:
    n_blocks, neck = _MOBILENET[arch]
    return {"stem": ("features.0",), **_numbered("features", 1, n_blocks), "top": (f"features.{n_blocks + 1}", *neck)}


# ConvNeXt and Swin: features = [stem, stage1, down, stage2, down, stage3, down, stage4]; a stage owns the
# downsampling layer in front of it and the last stage owns the final norm.
@register_family("convnext", r"convnext_(tiny|small|base|large)", head="classifier.2")
def _convnext(arch: str) -> Blocks:
    return _four_stages(final_norm="classifier.0")


@register_family("swin", r"swin_(v2_)?[tsb]", head="head")
def _swin(arch: str) -> Blocks:
    return _four_stages(final_norm="norm")


def _four_stages(final_norm: str) -> Blocks:
    return {
        "stem": ("features.0",),
        "stage1": ("features.1",),
        "stage2": ("features.2", "features.3"),
        "stage3": ("features.4", "features.5"),
        "stage4": ("features.6", "features.7", final_norm),
    }


@register_family("densenet", r"densenet(121|161|169|201)", head="classifier")
def _densenet(arch: str) -> Blocks:
    blocks: Blocks = {"stem": ("features.conv0", "features.norm0")}
    for i in range(1, 4):
        blocks[f"block{i}"] = (f"features.denseblock{i}", f"features.transition{i}")
    blocks["block4"] = ("features.denseblock4", "features.norm5")
    return blocks


_VIT_DEPTH = {"b": 12, "l": 24, "h": 32}


@register_family("vit", r"vit_([blh])_(14|16|32)", head="heads.head")
def _vit(arch: str) -> Blocks:
    depth = _VIT_DEPTH[arch.split("_")[1]]
    blocks: Blocks = {"embed": ("conv_proj", "class_token", "encoder.pos_embedding")}
    for i in range(depth):
        blocks[f"layer{i + 1}"] = (f"encoder.layers.encoder_layer_{i}",)
    blocks[f"layer{depth}"] += ("encoder.ln",)
    return blocks
