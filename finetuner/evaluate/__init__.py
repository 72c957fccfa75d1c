"""Evaluate: the one held-out test (`inference`, `metrics`, `ledger`), the leakage comparisons (`leakage`,
`leakage_runs`), and what a person reads: figures (`plots`, `pictures`, `summary_pictures`), the summary and model
card (`reporting`, `summary_sections`, `summary_leakage`, `report_format`, `report_inputs`).
Run by tasks/evaluate.py."""

from finetuner import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "predict_files": "inference",
        "classification_metrics": "metrics",
        "record_look": "ledger",
        "naive_split": "leakage",
        "confusion_figure": "plots",
        "reliability_figure": "plots",
        "render_summary": "reporting",
        "render_model_card": "reporting",
        "write_summary": "report_inputs",
    },
)
