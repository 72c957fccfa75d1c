"""Retrain: the champion/challenger decision (`champion`, pure) and the champion's files and registry (`registry`).
Run by the `retrain` Prefect flow (flows/retrain.py)."""

from finetuner import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "decide": "champion",
        "metric_value": "champion",
        "read_registry": "registry",
        "append_record": "registry",
        "install_champion": "registry",
    },
)
