"""Names params.yaml may use that must exist: torchvision architectures (of a registered family) with their
weights names, and cron expressions. Pure and fast: no torchvision import, so the first stage checks them in
well under a second instead of paying torchvision's import.

`TORCHVISION_WEIGHTS` is a copy of `torchvision.models.get_model_weights(arch)` for the pinned torchvision
(0.28); tests/test_params_checks.py compares it with the installed torchvision, so an upgrade that adds or drops a
name fails there. `cron_problem` follows the 5-field syntax of Prefect's cron schedules.
"""

from __future__ import annotations

import re

# weights names (besides DEFAULT) -> the architectures that have exactly those
_WEIGHTS_TABLE: dict[tuple[str, ...], tuple[str, ...]] = {
    ("IMAGENET1K_V1",): (
        "convnext_base",
        "convnext_large",
        "convnext_small",
        "convnext_tiny",
        "densenet121",
        "densenet161",
        "densenet169",
        "densenet201",
        "efficientnet_b0",
        "efficientnet_b2",
        "efficientnet_b3",
        "efficientnet_b4",
        "efficientnet_b5",
        "efficientnet_b6",
        "efficientnet_b7",
        "efficientnet_v2_l",
        "efficientnet_v2_m",
        "efficientnet_v2_s",
        "mobilenet_v3_small",
        "resnet18",
        "resnet34",
        "resnext101_64x4d",
        "swin_b",
        "swin_s",
        "swin_t",
        "swin_v2_b",
        "swin_v2_s",
        "swin_v2_t",
        "vit_b_32",
        "vit_l_32",
    ),
    ("IMAGENET1K_V1", "IMAGENET1K_V2"): (
        "efficientnet_b1",
        "mobilenet_v2",
        "mobilenet_v3_large",
        "regnet_x_16gf",
        "regnet_x_1_6gf",
        "regnet_x_32gf",
        "regnet_x_3_2gf",
        "regnet_x_400mf",
        "regnet_x_800mf",
        "regnet_x_8gf",
        "regnet_y_1_6gf",
        "regnet_y_3_2gf",
        "regnet_y_400mf",
        "regnet_y_800mf",
        "regnet_y_8gf",
        "resnet101",
        "resnet152",
        "resnet50",
        "resnext101_32x8d",
        "resnext50_32x4d",
        "wide_resnet101_2",
        "wide_resnet50_2",
    ),
    ("IMAGENET1K_SWAG_E2E_V1", "IMAGENET1K_SWAG_LINEAR_V1"): (
        "regnet_y_128gf",
        "vit_h_14",
    ),
    ("IMAGENET1K_V1", "IMAGENET1K_V2", "IMAGENET1K_SWAG_E2E_V1", "IMAGENET1K_SWAG_LINEAR_V1"): (
        "regnet_y_16gf",
        "regnet_y_32gf",
    ),
    ("IMAGENET1K_V1", "IMAGENET1K_SWAG_E2E_V1", "IMAGENET1K_SWAG_LINEAR_V1"): (
        "vit_b_16",
        "vit_l_16",
    ),
}
TORCHVISION_WEIGHTS: dict[str, tuple[str, ...]] = {
    arch: names for names, archs in _WEIGHTS_TABLE.items() for arch in archs
}
DEFAULT_WEIGHTS = "DEFAULT"


def weights_names(arch: str) -> tuple[str, ...]:
    """Every name `model.weights` may give for `arch` besides a path or null (DEFAULT first)."""
    return (DEFAULT_WEIGHTS, *TORCHVISION_WEIGHTS.get(arch, ()))


def looks_like_path(weights: str) -> bool:
    """The rule finetuner.train.models applies: a slash or a checkpoint suffix means a file, anything else a name."""
    return "/" in weights or "\\" in weights or weights.endswith((".pt", ".pth", ".bin"))


# field: (name, lowest, highest, names allowed in place of numbers)
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_ITEM = re.compile(r"^(?P<range>\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?$")


def cron_problem(expression: str) -> str | None:
    """None for a valid 5-field cron expression, else what is wrong with it (which field, which value)."""
    fields = expression.split()
    if len(fields) != 5:
        return f"{len(fields)} field{'s' if len(fields) != 1 else ''} instead of 5"
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS):
        for item in text.split(","):
            problem = _item_problem(item, low, high, names)
            if problem:
                spelled = f", {'/'.join(names)}" if names else ""
                return f"{name} field {text!r}: {problem} (allowed {low}-{high}{spelled})"
    return None


def _item_problem(item: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    match = _ITEM.match(item)
    if not match:
        return f"{item!r} is not a number, range, list or step"
    if match["step"] is not None and int(match["step"]) == 0:
        return "a step of 0"
    if match["range"] == "*":
        return None
    bounds = []
    for part in match["range"].split("-"):
        value = names.index(part.upper()) + (1 if low == 1 else 0) if part.upper() in names else _number(part)
        if value is None or not low <= value <= high:
            return f"{part!r} is out of range"
        bounds.append(value)
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        return f"range {item!r} runs backwards"
    return None


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None
