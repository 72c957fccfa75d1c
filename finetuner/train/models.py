"""Model surgery for staged fine-tuning: build with weights, replace the head, freeze blocks, apply the BN policy.

Every model built here has exactly the architecture of `get_model(arch, weights=None, num_classes=K)` (the
invariant `finetuner.train.checkpoint` relies on): pretrained weights are loaded into that model minus its head, so the
head is always a fresh one of the same structure sized to the classes. No file is written; pretrained weights are
read from the torch hub cache or a checkpoint path, never downloaded.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner.train.checkpoint import CheckpointError, build_classifier, load_checkpoint
from finetuner.train.families import ALL, HEAD, block_prefixes
from finetuner.train.preprocessing import Preprocessing, preprocessing_for

log = logging.getLogger(__name__)


class WeightsError(ValueError):
    """`model.weights` cannot be used; the message says what was looked for and where."""


@dataclass
class BuiltModel:
    model: nn.Module
    preprocessing: Preprocessing
    origin: dict[str, Any] = field(default_factory=dict)  # where the weights came from, what did not load


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def block_of(name: str, blocks: dict[str, tuple[str, ...]]) -> str | None:
    """The block a parameter/module name belongs to, or None (e.g. parameter-free glue modules)."""
    for block, prefixes in blocks.items():
        if any(_within(name, prefix) for prefix in prefixes):
            return block
    return None


def expand_blocks(arch: str, train: tuple[str, ...] | list[str]) -> list[str]:
    """The blocks a stage trains, in model order; `all` means every block, head included."""
    names = list(block_prefixes(arch))
    return names if ALL in train else [name for name in names if name in train]


def parameters_by_block(model: nn.Module, arch: str) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Every parameter of the model under its block; a parameter in no block is a registry error."""
    blocks = block_prefixes(arch)
    grouped: dict[str, list[tuple[str, nn.Parameter]]] = {block: [] for block in blocks}
    for name, param in model.named_parameters():
        block = block_of(name, blocks)
        if block is None:
            raise ValueError(f"{arch}: parameter {name!r} belongs to no block of the family registry")
        grouped[block].append((name, param))
    return grouped


def freeze_except(model: nn.Module, arch: str, trained: list[str]) -> None:
    """requires_grad only for the parameters of the trained blocks."""
    for block, params in parameters_by_block(model, arch).items():
        for _, param in params:
            param.requires_grad_(block in trained)


def set_train_mode(model: nn.Module, arch: str, trained: list[str], bn_policy: str) -> nn.Module:
    """model.train(), then (policy `frozen`) every module outside the trained blocks back to eval mode.

    A frozen block is a fixed feature extractor: its BatchNorm must keep normalising with the statistics it was
    pretrained with (updating them on a small, differently distributed dataset silently shifts the features the
    head learns on), and it must be deterministic, which is also what makes cached head-only training exact.
    Policy `eval` keeps every BatchNorm, in trained blocks too, normalising with its pretrained statistics (its
    scale and shift still learn): a stage then starts from exactly the function the previous stage handed on (a
    converged probe stays converged), and the statistics do not drift with the batches. `train` updates them all.
    Must be re-applied after every `model.train()`.
    """
    model.train()
    if bn_policy == "eval":
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.training = False
    if bn_policy != "frozen":
        return model
    prefixes = [prefix for block, values in block_prefixes(arch).items() if block in trained for prefix in values]
    for name, module in model.named_modules():
        inside = any(_within(name, prefix) for prefix in prefixes)
        ancestor = any(name == "" or prefix.startswith(name + ".") for prefix in prefixes)
        if not inside and not ancestor:
            module.training = False  # not .eval(): that would recurse into trained children
    return model


def head_module(model: nn.Module, arch: str) -> nn.Module:
    return model.get_submodule(block_prefixes(arch)[HEAD][0])


def build_model(arch: str, num_classes: int, weights: str | None, image_size: int) -> BuiltModel:
    """The classifier for `num_classes`, initialised from `weights` (enum name, DEFAULT, checkpoint path or None)."""
    model = build_classifier(arch, num_classes)
    if weights is None:
        return BuiltModel(model, preprocessing_for(None, image_size), {"weights": None})
    if _looks_like_path(weights):
        state, preprocessing, origin = _checkpoint_state(arch, Path(weights), image_size)
    else:
        state, preprocessing, origin = _torchvision_state(arch, weights, image_size)
    origin.update(load_backbone(model, arch, state))
    return BuiltModel(model, preprocessing, origin)


def _looks_like_path(weights: str) -> bool:
    return "/" in weights or weights.endswith((".pt", ".pth", ".bin")) or Path(weights).exists()


def _torchvision_state(arch: str, name: str, image_size: int) -> tuple[dict, Preprocessing, dict]:
    from torchvision.models import get_model, get_model_weights

    enum = get_model_weights(arch)
    try:
        member = enum[name]
    except KeyError:
        allowed = ", ".join(["DEFAULT", *enum.__members__])
        raise WeightsError(f"model.weights: {name!r} is not a weights name of {arch} (allowed: {allowed})") from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(member.url).name
    if not cached.is_file():
        # torchvision would download it; this pipeline never downloads implicitly (no internet at run time).
        raise WeightsError(
            f"model.weights: {enum.__name__}.{member.name} is not in the torch hub cache; "
            f"place {Path(member.url).name} at {cached} (from {member.url}) "
            "or set model.weights to a checkpoint path or null"
        )
    try:
        pretrained = get_model(arch, weights=member)  # torchvision's own loading: reads the hub cache first
    except (RuntimeError, pickle.UnpicklingError) as exc:
        raise WeightsError(f"model.weights: {cached} could not be loaded as {member.name} ({exc})") from None
    origin = {"weights": f"{enum.__name__}.{member.name}", "file": str(cached)}
    return pretrained.state_dict(), preprocessing_for(member, image_size), origin


def _checkpoint_state(arch: str, path: Path, image_size: int) -> tuple[dict, Preprocessing, dict]:
    try:
        checkpoint = load_checkpoint(path)  # weights_only=True: a file that would run code is refused
    except CheckpointError as exc:
        raise WeightsError(f"model.weights: {exc}") from None
    preprocessing = preprocessing_for(None, image_size)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        if checkpoint.get("arch", arch) != arch:
            raise WeightsError(f"model.weights: {path} holds a {checkpoint['arch']} model, but model.arch is {arch}")
        if isinstance(checkpoint.get("preprocessing"), dict):
            stored = Preprocessing.from_dict(checkpoint["preprocessing"])
            resize = max(image_size, round(image_size * stored.resize_size / stored.crop_size))
            preprocessing = Preprocessing(resize, image_size, stored.mean, stored.std, stored.interpolation)
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise WeightsError(f"model.weights: {path} is neither a pipeline checkpoint nor a state dict of tensors")
    return checkpoint, preprocessing, {"weights": str(path)}


def load_backbone(model: nn.Module, arch: str, state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Load every non-head tensor whose name and shape match; report the rest by name. The head stays fresh."""
    head = block_prefixes(arch)[HEAD][0]
    own = model.state_dict()
    usable, mismatched, unexpected = {}, [], []
    for name, tensor in state.items():
        if _within(name, head):
            continue
        if name not in own:
            unexpected.append(name)
        elif own[name].shape != tensor.shape:
            mismatched.append(f"{name} {tuple(tensor.shape)} -> {tuple(own[name].shape)}")
        else:
            usable[name] = tensor
    missing = [name for name in own if not _within(name, head) and name not in usable]
    if not usable:
        raise WeightsError(f"model.weights: no tensor matches {arch} (first names found: {list(state)[:5]})")
    model.load_state_dict(usable, strict=False)
    for label, names in (("missing (kept at init)", missing), ("shape mismatch", mismatched), ("unused", unexpected)):
        if names:
            log.warning("weights for %s: %d %s: %s", arch, len(names), label, ", ".join(names[:20]))
    return {"missing": missing, "mismatched": mismatched, "unexpected": unexpected}
