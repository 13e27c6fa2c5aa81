from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import write_cifar10, write_image_folder

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.data import DataOptions, load_dataset
from jetfleet.controller.data.splits import TensorSplit, stratified_split


def test_digits_is_embedded_and_split_three_ways() -> None:
    b = load_dataset("digits")
    assert (len(b.train), len(b.val), len(b.test)) == (1259, 179, 359)
    assert b.channels == 1 and b.input_size == 8 and b.num_classes == 10
    assert b.train.images.dtype == torch.uint8 and int(b.train.images.max()) == 255
    assert 0.2 < b.mean[0] < 0.4 and 0.3 < b.std[0] < 0.5
    spec = b.preprocess_spec()
    assert spec.labels == tuple("0123456789") and spec.input_size == (8, 8)


def test_splits_do_not_overlap_and_keep_class_balance() -> None:
    targets = np.repeat(np.arange(5), 40)
    train, val, test = stratified_split(targets, (0.1, 0.2), seed=0)
    assert len(set(train) | set(val) | set(test)) == 200
    assert not set(train) & set(test) and not set(val) & set(test)
    assert np.bincount(targets[test]).tolist() == [8] * 5
    again = stratified_split(targets, (0.1, 0.2), seed=0)
    assert all((a == b).all() for a, b in zip(again, (train, val, test), strict=True))


def test_cifar10_reads_the_standard_pickle_format(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_batch=20, test=30)
    b = load_dataset("cifar10", DataOptions(root=tmp_path))
    assert isinstance(b.train, TensorSplit)
    assert len(b.train) + len(b.val) == 100 and len(b.test) == 30
    assert b.train.images.shape[1:] == (3, 32, 32)
    assert b.labels[0] == "airplane" and b.num_classes == 10
    assert b.mean == pytest.approx((0.4914, 0.4822, 0.4465))
    assert b.default_augment.hflip and b.default_augment.crop_padding == 4


def test_cifar10_pixel_layout_is_channel_major(tmp_path: Path) -> None:
    """CIFAR rows are 1024 red, then 1024 green, then 1024 blue values."""
    folder = write_cifar10(tmp_path, per_batch=10, test=10)
    import pickle

    raw = pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")
    b = load_dataset("cifar10", DataOptions(root=tmp_path))
    assert isinstance(b.test, TensorSplit)
    np.testing.assert_array_equal(b.test.images[0, 1].numpy().ravel(), raw[b"data"][0][1024:2048])


def test_cifar10_missing_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(JetfleetError, match=r"cifar-10-batches-py.*--download"):
        load_dataset("cifar10", DataOptions(root=tmp_path))


def test_cifar10_refuses_pickled_code(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path, per_batch=5, test=5)
    sentinel = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple:
            return (Path.touch, (sentinel,))

    import pickle

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(JetfleetError, match="not allowed"):
        load_dataset("cifar10", DataOptions(root=tmp_path))
    assert not sentinel.exists()


def test_image_folder_without_splits(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "pets", per_class=10)
    b = load_dataset(f"folder:{tmp_path / 'pets'}", DataOptions(image_size=16))
    assert isinstance(b.train, TensorSplit)
    assert b.labels == ("cat", "dog", "fox")
    assert len(b.train) + len(b.val) + len(b.test) == 30
    image, label = b.test.pixels()[0], int(b.test.targets[0])
    assert image.shape == (3, 16, 16) and image.dtype == torch.uint8 and 0 <= label < 3
    assert len(b.mean) == 3 and all(0 < s < 1 for s in b.std)


def test_image_folder_with_train_and_val(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "ds" / "train", per_class=8)
    write_image_folder(tmp_path / "ds" / "val", classes=("cat", "fox"), per_class=3, seed=1)
    b = load_dataset(f"folder:{tmp_path / 'ds'}", DataOptions(image_size=12, channels=1))
    assert len(b.test) == 6 and b.channels == 1
    assert sorted(set(b.test.targets.tolist())) == [0, 2]  # val's classes mapped onto train's ids


def test_imagenet_layout(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "train", classes=("n01", "n02"), per_class=6)
    write_image_folder(tmp_path / "val", classes=("n01", "n02"), per_class=2)
    b = load_dataset("imagenet", DataOptions(root=tmp_path, image_size=24))
    assert b.labels == ("n01", "n02") and len(b.test) == 4
    assert b.mean == pytest.approx((0.485, 0.456, 0.406))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mnist", "unknown dataset 'mnist'"),
        ("folder:/definitely/not/here", "does not exist"),
        ("imagenet", "needs train/ and val/"),
    ],
)
def test_bad_dataset_names(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(JetfleetError, match=message):
        load_dataset(name, DataOptions(root=tmp_path))


def test_folder_with_no_classes(tmp_path: Path) -> None:
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(JetfleetError, match="has no classes"):
        load_dataset(f"folder:{tmp_path / 'empty'}")


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "ds", per_class=4)
    bad = tmp_path / "ds" / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(JetfleetError, match=r"1 unreadable image\(s\): .*broken\.png .*--skip-bad"):
        load_dataset(f"folder:{tmp_path / 'ds'}", DataOptions(image_size=8))
