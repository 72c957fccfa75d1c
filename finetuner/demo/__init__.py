"""Demo: the synthetic specimen world (`world`, `shapes`, `copies`), photo-like test images (`synthetic_photos`),
and the two `make demo-data` commands: `python -m finetuner.demo.data` and `python -m finetuner.demo.pretrain`."""

from finetuner import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "DEMO_SPEC": "world",
        "build_world": "world",
        "photo": "synthetic_photos",
        "variant": "synthetic_photos",
    },
)
