"""Optimizer parameter groups for a stage: one learning rate per trained block, no weight decay on norm/bias.

`block_learning_rates` turns a stage's `lr` dict (and optional `lr_decay`) into one rate per trained block;
`build_param_groups` returns a plain `list[dict]` for `torch.optim` over exactly the trainable parameters;
`build_optimizer` makes the AdamW or SGD optimizer over them. Pure functions; nothing here reads params.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from finetuner.train.models import parameters_by_block

# Normalisation layers: their scale/shift are statistics-like and decaying them towards zero only hurts.
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)
# Embeddings that are not weights of a linear map (timm's `no_weight_decay` names for ViT/Swin).
NO_DECAY_NAMES = ("class_token", "pos_embedding", "relative_position_bias_table", "logit_scale")


def block_learning_rates(
    order: Sequence[str], trained: Sequence[str], lr: dict[str, float], lr_decay: float | None
) -> dict[str, float]:
    """One learning rate per trained block (in `order`, input side first).

    Explicit rates win. With `lr_decay`, a block without one gets the rate of the nearest explicitly set block
    on its output side times `lr_decay` per block of distance (layer-wise decay going down from the last named
    block); a block above every named one is scaled up from the nearest one below instead.
    """
    rates: dict[str, float] = {}
    explicit = [i for i, block in enumerate(order) if block in lr]
    for index, block in enumerate(order):
        if block not in trained:
            continue
        if block in lr:
            rates[block] = lr[block]
            continue
        if lr_decay is None or not explicit:
            raise ValueError(f"no learning rate for block {block!r}: add it to lr or set lr_decay")
        above = [i for i in explicit if i > index]
        anchor = min(above) if above else max(explicit)
        rates[block] = lr[order[anchor]] * lr_decay ** (anchor - index)
    return rates


def _no_decay_names(model: nn.Module) -> set[str]:
    names = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if isinstance(module, NORM_TYPES) or param.ndim <= 1 or param_name in NO_DECAY_NAMES:
                names.add(full)
    return names


def build_param_groups(
    model: nn.Module, arch: str, rates: dict[str, float], weight_decay: float
) -> list[dict[str, Any]]:
    """Groups over the trainable parameters of the blocks in `rates`: per block, one decayed, one not.

    Frozen parameters (requires_grad False) never enter a group. Each group carries `name`, `block`, `lr`,
    `weight_decay` and `param_names` besides `params`; torch optimizers keep such extra keys.
    """
    no_decay = _no_decay_names(model)
    groups: list[dict[str, Any]] = []
    for block, named in parameters_by_block(model, arch).items():
        if block not in rates:
            continue
        for decayed in (True, False):
            chosen = [(n, p) for n, p in named if p.requires_grad and (n not in no_decay) == decayed]
            if chosen:
                groups.append(
                    {
                        "params": [p for _, p in chosen],
                        "param_names": [n for n, _ in chosen],
                        "name": f"{block}/{'decay' if decayed else 'no_decay'}",
                        "block": block,
                        "lr": rates[block],
                        "weight_decay": weight_decay if decayed else 0.0,
                    }
                )
    if not groups:
        raise ValueError(f"{arch}: no trainable parameter in blocks {list(rates)}")
    return groups


def build_optimizer(groups: list[dict[str, Any]], name: str, momentum: float = 0.9) -> torch.optim.Optimizer:
    """AdamW (default) or SGD with Nesterov momentum over prepared groups."""
    if name == "adamw":
        return torch.optim.AdamW(groups)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=momentum, nesterov=momentum > 0)
    raise ValueError(f"unknown optimizer {name!r} (allowed: adamw, sgd)")


def describe_groups(groups: list[dict[str, Any]]) -> list[str]:
    """One line per group (name, tensors, parameters, lr, decay) for the stage log."""
    return [
        f"{g['name']}: {len(g['params'])} tensors, {sum(p.numel() for p in g['params']):,} params, "
        f"lr {g.get('initial_lr', g['lr']):.3g}, weight_decay {g['weight_decay']:.3g}"
        for g in groups
    ]
