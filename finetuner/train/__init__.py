"""Train: the three training stages' shared body (`stage`, `plan`, `probe`, `stage_files`, `recipe_files`), the
engine and its seams (`engine`, `data`, `crops`, `features`, image store and cache), models and families (`models`,
`families`, `checkpoint`, `preprocessing`), and the recipe (`param_groups`, `schedules`, `lr_finder`, `recipe`,
`linear_probe`). Run by tasks/train.py."""

from finetuner import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "STAGES": "stage",
        "run_training_stage": "stage",
        "FitConfig": "engine",
        "Runtime": "engine",
        "fit": "engine",
        "pick_runtime": "engine",
        "build_model": "models",
        "freeze_except": "models",
        "load_pipeline_checkpoint": "checkpoint",
        "model_from_checkpoint": "checkpoint",
        "Preprocessing": "preprocessing",
        "build_param_groups": "param_groups",
        "build_optimizer": "param_groups",
        "build_scheduler": "schedules",
        "range_test": "lr_finder",
    },
)
