"""fastai's `fine_tune` on a finetuner workspace's split: the peer that benchmarks/bench_recipe.py compares against.

Run only with this environment's python (benchmarks/envs/fastai/.venv/bin/python), never imported by finetuner:
    fine_tune.py WORKSPACE WEIGHTS --image-size 48 --epochs 9 --freeze-epochs 1 --out result.json
Reads WORKSPACE/data/splits/{train,val,test}.csv and WORKSPACE/data/raw/images; loads the backbone of WEIGHTS (a
finetuner checkpoint of a torchvision resnet) into fastai's resnet body, normalises with the checkpoint's own
statistics, trains `learn.fine_tune(epochs, freeze_epochs=...)` at fastai's default base rate, and writes the
test macro-F1 and the training wall and CPU time (the `fine_tune` call alone) as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch
from fastai.vision.all import (
    CategoryBlock,
    ColReader,
    DataBlock,
    ImageBlock,
    Normalize,
    Resize,
    accuracy,
    resnet18,
    set_seed,
    vision_learner,
)
from sklearn.metrics import f1_score

# torchvision resnet names -> index in fastai's body (nn.Sequential of the resnet's children up to layer4)
BODY_INDEX = {"conv1": 0, "bn1": 1, "layer1": 4, "layer2": 5, "layer3": 6, "layer4": 7}


def frames(workspace: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    splits = {name: pd.read_csv(workspace / "data" / "splits" / f"{name}.csv") for name in ("train", "val", "test")}
    train_val = pd.concat([splits["train"].assign(is_valid=False), splits["val"].assign(is_valid=True)])
    return train_val.reset_index(drop=True), splits["test"]


def load_body(body: torch.nn.Module, weights: Path) -> None:
    checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
    state = {}
    for name, tensor in checkpoint["state_dict"].items():
        block, _, rest = name.partition(".")
        if block in BODY_INDEX:
            state[f"{BODY_INDEX[block]}.{rest}"] = tensor
    missing, unexpected = body.load_state_dict(state, strict=False)
    assert not unexpected and not [m for m in missing if "num_batches" not in m], (missing, unexpected)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workspace", type=Path)
    parser.add_argument("weights", type=Path)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--freeze-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed, reproducible=True)
    train_val, test = frames(args.workspace)
    images = args.workspace / "data" / "raw" / "images"
    stats = torch.load(args.weights, map_location="cpu", weights_only=True)["preprocessing"]
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        get_x=ColReader("path", pref=f"{images}/"),
        get_y=ColReader("label"),
        splitter=lambda df: (list(df.index[~df.is_valid]), list(df.index[df.is_valid])),
        item_tfms=Resize(args.image_size),
        batch_tfms=Normalize.from_stats(stats["mean"], stats["std"]),
    )
    dls = block.dataloaders(train_val, bs=args.batch_size, num_workers=0, device=torch.device("cpu"))
    learn = vision_learner(dls, resnet18, pretrained=False, normalize=False, metrics=accuracy)
    load_body(learn.model[0], args.weights)
    began, cpu_began = time.perf_counter(), time.process_time()
    learn.fine_tune(args.epochs, freeze_epochs=args.freeze_epochs)
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    probs, _ = learn.get_preds(dl=dls.test_dl(test))
    predicted = [dls.vocab[i] for i in probs.argmax(1).tolist()]
    result = {
        "macro_f1": f1_score(test["label"], predicted, average="macro"),
        "train_seconds": seconds,
        "train_cpu_seconds": cpu_seconds,
        "n_test": len(test),
        "epochs": args.epochs,
        "freeze_epochs": args.freeze_epochs,
    }
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
