"""The optional embedding signal of the dedup stage: exact similarity search, the stage's use of it, the real backbone.

The stage tests replace the backbone with fixed vectors (`embed_contents` patched) so what must be found is known;
the backbone tests run the real loading and forward path (resnet18 at 32 px) and its per-content cache.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from finetuner.common.stage import InputError, write_csv
from finetuner.config import ConfigError, parse_params
from finetuner.dedup import embedding as dedup_embed
from finetuner.dedup import stage as dedup
from finetuner.dedup.similarity import TooManyPairs, brute_force_similar_pairs, similar_pairs
from finetuner.demo.synthetic_photos import photo, to_jpeg_bytes
from tests.tasks.test_dedup import COLUMNS, add_image, make_dataset


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Vectors around n // 4 centres, so some pairs are close and most are not."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 4), dim))
    return (centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.35, size=(n, dim))).astype(np.float32)


@pytest.mark.parametrize("block", [1, 7, 64, 4096])
@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.95])
def test_similar_pairs_equal_brute_force(block: int, threshold: float) -> None:
    vectors = clustered(90, 16, seed=block)
    i, j, sim = similar_pairs(vectors, threshold, block=block)
    found = set(zip(i.tolist(), j.tolist()))
    expected = brute_force_similar_pairs(vectors, threshold)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    # Only a pair within float32 rounding of the threshold may be decided differently by the two computations.
    assert all(abs(float(unit[a] @ unit[b]) - threshold) < 1e-5 for a, b in found ^ expected)
    assert len(found) > 0 and all(a < b for a, b in found)
    assert np.allclose(sim, np.sum(unit[i] * unit[j], axis=1), atol=1e-5)
    assert list(zip(i.tolist(), j.tolist())) == sorted(found)


def test_zero_vectors_are_similar_to_nothing() -> None:
    vectors = np.array([[0, 0], [0, 0], [1, 0], [1, 0.01]], dtype=np.float32)
    i, j, _ = similar_pairs(vectors, 0.5)
    assert list(zip(i.tolist(), j.tolist())) == [(2, 3)]


def test_too_many_pairs_stops_instead_of_filling_memory() -> None:
    vectors = np.ones((50, 8), dtype=np.float32)  # all identical: 1,225 pairs
    with pytest.raises(TooManyPairs, match="more than 100 pairs among 50 images"):
        similar_pairs(vectors, 0.9, max_pairs=100, block=10)
    assert len(similar_pairs(vectors, 0.9, max_pairs=2000)[0]) == 50 * 49 // 2


def test_embedding_params_are_validated() -> None:
    assert parse_params({}).dedup.embedding.enabled is False  # off by default
    with pytest.raises(ConfigError, match=r"dedup\.embedding\.min_similarity"):
        parse_params({"dedup": {"embedding": {"min_similarity": 1.5}}})
    with pytest.raises(ConfigError, match=r"dedup\.embedding\.threshold"):
        parse_params({"dedup": {"embedding": {"threshold": 0.9}}})


# --- the stage, with known vectors in place of the backbone ---------------------------------------------------


def fake_backbone(monkeypatch: pytest.MonkeyPatch, vector_of: dict[str, list[float]]) -> list[str]:
    """Patch embed_contents: a file named in `vector_of` gets that vector, any other one a distinct axis."""
    seen: list[str] = []

    def embed(paths, shas, params, cache_dir, workers):
        seen.extend(Path(p).name for p in paths)
        rows = []
        for k, path in enumerate(paths):
            row = np.zeros(64, np.float32)
            if Path(path).name in vector_of:
                row[: len(vector_of[Path(path).name])] = vector_of[Path(path).name]
            else:
                row[8 + k] = 1.0
            rows.append(row)
        return dedup_embed.Embeddings(np.stack(rows), n_new=len(paths), origin={"arch": "fake", "weights": None})

    monkeypatch.setattr(dedup_embed, "embed_contents", embed)
    return seen


def read_pairs(root: Path) -> list[dict]:
    with (root / dedup.PAIRS_CSV).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_embedding_pairs_join_what_hashes_miss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dataset(tmp_path)
    # p1 and p3 are "new photos of one thing" (similarity 0.99); p2 is near p1 but below 0.95 (0.93); p0 (embedded
    # as copy_of_p0.jpg, the first path holding its content) and its variants share one vector, so the pairs the
    # hashes found already must stay labelled by the hashes.
    shared = [1.0, 0.0, 0.0]
    variants = {f"v0_{k}.jpg": shared for k in ("reencode", "rescale", "blur", "brightness")}
    vectors = {
        "p1.jpg": [0.0, 1.0, 0.0],
        "p3.jpg": [0.0, 0.99, 0.141],
        "p2.jpg": [0.0, 0.93, -0.3676],
        "copy_of_p0.jpg": shared,
        **variants,
    }
    fake_backbone(monkeypatch, vectors)
    params = parse_params({"data": {"workers": 1}, "dedup": {"embedding": {"enabled": True}}})
    summary = dedup.run(params, tmp_path)
    embedding = [p for p in read_pairs(tmp_path) if p["method"] == "embedding"]
    assert [(p["path_a"], p["path_b"]) for p in embedding] == [("c1/p1.jpg", "c1/p3.jpg")]
    assert 0 < float(embedding[0]["distance"]) < 0.05  # cosine distance, 1 - similarity
    units = {r["path"]: r["unit"] for r in csv.DictReader((tmp_path / dedup.UNITS_CSV).open())}
    assert units["c1/p1.jpg"] == units["c1/p3.jpg"] != units["c0/p2.jpg"]
    section = summary["embedding"]
    assert section["enabled"] and section["pairs"] == 1 and section["pairs_also_found_by_hashes"] > 0
    by_threshold = {row["min_similarity"]: row for row in section["tradeoff"]}
    assert by_threshold[0.91]["pairs"] > by_threshold[0.95]["pairs"]  # the looser rows count p2's pair too
    assert by_threshold[0.95]["cross_group_pairs"] == 1  # p1 and p3 were declared groups g1 and g3
    report = json.loads((tmp_path / dedup.REPORT_JSON).read_text())
    assert report["counts"]["pairs_by_method"]["embedding"] == 1
    html = (tmp_path / dedup.REPORT_HTML).read_text()
    assert "Pairs only the embeddings found (1)" in html and "c1/p3.jpg" in html


def test_embedding_off_by_default_runs_no_backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dataset(tmp_path)
    seen = fake_backbone(monkeypatch, {})
    summary = dedup.run(parse_params({"data": {"workers": 1}}), tmp_path)
    assert seen == [] and summary["embedding"] == {"enabled": False}
    assert all(p["method"] != "embedding" for p in read_pairs(tmp_path))


def test_low_detail_images_take_no_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    rows: list[dict] = []
    Image.fromarray(np.full((48, 64, 3), 120, np.uint8)).save(tmp_path / "flat.png")
    add_image(tmp_path, rows, "c0/flat.png", (tmp_path / "flat.png").read_bytes(), "")
    add_image(tmp_path, rows, "c1/p1.jpg", to_jpeg_bytes(photo(1, (96, 72))), "")
    write_csv(tmp_path / dedup.MANIFEST, rows, COLUMNS)
    fake_backbone(monkeypatch, {"flat.png": [1.0], "p1.jpg": [1.0]})  # identical embeddings, unrelated pictures
    summary = dedup.run(parse_params({"data": {"workers": 1}, "dedup": {"embedding": {"enabled": True}}}), tmp_path)
    assert summary["embedding"]["low_detail_skipped"] == 1 and summary["embedding"]["pairs"] == 0
    assert read_pairs(tmp_path) == []


def test_a_backbone_that_joins_everything_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = make_dataset(tmp_path)
    fake_backbone(monkeypatch, {Path(r["path"]).name: [1.0] for r in rows})  # every image the same vector
    params = parse_params({"data": {"workers": 1}, "dedup": {"embedding": {"enabled": True, "max_pairs_per_image": 1}}})
    with pytest.raises(ConfigError, match=r"dedup\.embedding\.min_similarity.*do not tell these images apart"):
        dedup.run(params, tmp_path)
    assert not (tmp_path / dedup.PAIRS_CSV).exists()  # nothing half-written


def test_embedding_pairs_are_cut_before_hash_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a size guard, the weaker evidence goes first: the hash cluster stays whole, the embedding edge is cut."""
    make_dataset(tmp_path)
    fake_backbone(monkeypatch, {"v0_blur.jpg": [1.0], "p4.jpg": [1.0]})  # p4 looks like p0's cluster to the backbone
    hashes_only = dedup.run(parse_params({"data": {"workers": 1}}), tmp_path)
    largest = hashes_only["largest_cluster_size"]
    assert largest > 2 and hashes_only["counts"]["pairs_cut_by_size_guard"] == 0
    params = parse_params(
        {"data": {"workers": 1}, "dedup": {"max_cluster_size": largest, "embedding": {"enabled": True}}}
    )
    summary = dedup.run(params, tmp_path)
    assert [(p["path_a"], p["path_b"], p["method"]) for p in summary["cut_pairs"]] == [
        ("c0/p4.jpg", "c0/v0_blur.jpg", "embedding")
    ]


# --- the real backbone ------------------------------------------------------------------------------------------


def test_real_backbone_embeds_once_per_content_and_backbone(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    images = tmp_path / "images"
    images.mkdir()
    paths, shas = [], []
    for seed in range(3):
        path = images / f"p{seed}.jpg"
        path.write_bytes(to_jpeg_bytes(photo(seed, (80, 60))))
        paths.append(path)
        shas.append(f"{seed:064x}")
    params = parse_params(
        {"model": {"arch": "resnet18", "weights": None}, "dedup": {"embedding": {"enabled": True, "image_size": 32}}}
    )
    cache = tmp_path / "cache"
    first = dedup_embed.embed_contents(paths, shas, params, cache, workers=1)
    assert first.vectors.shape == (3, 512) and first.n_new == 3
    again = dedup_embed.embed_contents(paths, shas, params, cache, workers=1)  # same seed: same random backbone
    assert again.n_new == 0 and np.allclose(again.vectors, first.vectors, rtol=1e-2, atol=1e-3)
    grown = dedup_embed.embed_contents([*paths, paths[0]], [*shas, "f" * 64], params, cache, workers=1)
    assert grown.n_new == 1 and np.allclose(grown.vectors[3], grown.vectors[0], rtol=1e-2, atol=1e-3)

    # Other weights (a plain state dict on disk, the checkpoint-path route) get their own cache entry.
    from torchvision.models import resnet18

    torch.manual_seed(123)
    weights = tmp_path / "other.pt"
    torch.save(resnet18().state_dict(), weights)
    other = parse_params(
        {
            "model": {"arch": "resnet18", "weights": str(weights)},
            "dedup": {"embedding": {"enabled": True, "image_size": 32}},
        }
    )
    moved = dedup_embed.embed_contents(paths, shas, other, cache, workers=1)
    assert moved.n_new == 3 and not np.allclose(moved.vectors, first.vectors)
    assert len(list(cache.glob("embed-*.npz"))) == 2


def test_missing_weights_name_the_key(tmp_path: Path) -> None:
    params = parse_params(
        {
            "model": {"arch": "resnet18", "weights": str(tmp_path / "absent.pt")},
            "dedup": {"embedding": {"enabled": True}},
        }
    )
    with pytest.raises(ConfigError, match=r"dedup\.embedding.*model\.weights.*absent\.pt"):
        dedup_embed.embed_contents([], [], params, tmp_path / "cache", workers=1)


def test_a_file_the_backbone_cannot_decode_is_named(tmp_path: Path) -> None:
    from finetuner.train.preprocessing import Preprocessing

    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    good.write_bytes(to_jpeg_bytes(photo(0, (40, 30))))
    bad.write_bytes(to_jpeg_bytes(photo(1, (40, 30)))[:200])  # truncated
    assert dedup_embed.decode_named([good], Preprocessing(32, 32), 1).shape == (1, 32, 32, 3)
    with pytest.raises(InputError, match=r"bad\.jpg: cannot be decoded for dedup\.embedding"):
        dedup_embed.decode_named([good, bad], Preprocessing(32, 32), 1)
