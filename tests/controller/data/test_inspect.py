"""``jetfleet data inspect`` on folder, CIFAR-10 and ImageNet layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fixtures import write_cifar10, write_image_folder

from jetfleet.controller.data import DataOptions
from jetfleet.controller.data.inspect import inspect_dataset


def test_folder_report_counts_classes_sizes_and_problems(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", per_class=10)
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    report = inspect_dataset(f"folder:{root}", DataOptions(workers=2)).to_dict()
    assert [s["name"] for s in report["splits"]] == ["train", "val", "test"]
    assert sum(s["images"] for s in report["splits"]) == 31
    assert sum(s["classes"]["dog"] for s in report["splits"]) == 11
    assert report["unreadable"] == [
        {"path": str(root / "dog" / "broken.png"), "error": report["unreadable"][0]["error"]}
    ]
    assert report["sizes"]["distinct_sizes"] == 2 and report["sizes"]["modes"] == {"RGB": 30}
    assert report["defaults"]["channels"] == 3 and report["defaults"]["image_size"] == 24  # median 20 → 24
    assert "hflip" not in report["defaults"]["augment"]


def test_duplicates_across_splits_are_found_by_content(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "ds" / "train", classes=("a", "b"), per_class=6)
    write_image_folder(tmp_path / "ds" / "val", classes=("a", "b"), per_class=2, seed=9)
    leaked = next((tmp_path / "ds" / "train" / "a").glob("*.png"))
    shutil.copy(leaked, tmp_path / "ds" / "val" / "a" / "copy.png")
    report = inspect_dataset(f"folder:{tmp_path / 'ds'}", DataOptions()).to_dict()
    dup = report["duplicates"]
    assert dup["across_splits"] == 1 and dup["examples"][0]["test"] == "val/a/copy.png"
    assert report["layout"]["test"] == str(tmp_path / "ds" / "val")


def test_imagenet_layout(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "train", classes=("n01", "n02"), per_class=6, size=40)
    write_image_folder(tmp_path / "val", classes=("n01", "n02"), per_class=2, size=40)
    report = inspect_dataset("imagenet", DataOptions(root=tmp_path)).to_dict()
    assert report["dataset"] == "imagenet" and [s["images"] for s in report["splits"]] == [10, 2, 4]


def test_cifar10_report_hashes_pixels(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_batch=20, test=30)
    report = inspect_dataset("cifar10", DataOptions(root=tmp_path)).to_dict()
    assert [s["images"] for s in report["splits"]] == [90, 10, 30]
    assert report["sizes"]["common_sizes"][0] == {"width": 32, "height": 32, "count": 130}
    assert report["defaults"]["augment"] == "crop pad 4, hflip"
    assert report["duplicates"]["across_splits"] == 0
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copy(folder / "data_batch_1", folder / "test_batch")  # a test set leaked from training
    leaked = inspect_dataset("cifar10", DataOptions(root=tmp_path)).to_dict()["duplicates"]
    assert leaked["across_splits"] == 20 and set(leaked["examples"][0]) in ({"train", "test"}, {"val", "test"})


def test_cli_json_and_tables(cli, tmp_path: Path) -> None:
    from jetfleet.controller.data.samples import write_digits_folder

    write_digits_folder(tmp_path / "digits", size=16)
    out = cli("data", "inspect", f"folder:{tmp_path / 'digits'}", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["defaults"]["image_size"] == 16 and doc["defaults"]["channels"] == 1
    assert isinstance(doc["splits"][0]["images"], int) and doc["sizes"]["modes"] == {"L": 1797}
    text = cli("data", "inspect", f"folder:{tmp_path / 'digits'}")
    assert "train would use: input 16×16×1" in text.stdout and "imbalance" in text.stdout


def test_inspect_and_training_cut_the_same_splits_even_with_a_bad_file(tmp_path: Path) -> None:
    from jetfleet.controller.data import load_dataset
    from jetfleet.controller.data.scan import list_folder

    root = write_image_folder(tmp_path / "pets", per_class=10)
    broken = root / "dog" / "broken.png"
    broken.write_bytes(b"not a png")
    report = inspect_dataset(f"folder:{root}", DataOptions())
    bundle = load_dataset(f"folder:{root}", DataOptions(skip_bad=True))
    paths = [p for p, _ in list_folder(root).samples]
    for counts, split in zip(report.splits, (bundle.train, bundle.val, bundle.test), strict=True):
        trained_on = {paths[r] for r in split.rows.tolist()}
        assert counts.images - len(trained_on) in (0, 1)  # inspect counts the broken file, training drops it
    broken.write_bytes((root / "dog" / next(p.name for p in (root / "dog").glob("*.png") if p != broken)).read_bytes())
    fixed = load_dataset(f"folder:{root}", DataOptions())
    assert set(bundle.test.rows.tolist()) <= set(fixed.test.rows.tolist())  # fixing a file moves nothing
