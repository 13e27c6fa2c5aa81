"""Defaults fitted to an image folder: size, channels and a label-safe augmentation."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import write_image_folder
from PIL import Image

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.data import DataOptions, load_dataset
from jetfleet.controller.data.defaults import choose_channels, choose_size, default_augment
from jetfleet.controller.data.samples import write_digits_folder
from jetfleet.controller.data.scan import FileInfo


def test_a_common_size_is_the_default() -> None:
    assert choose_size([FileInfo(28, 28, "L")] * 3)[0] == 28
    size, why = choose_size([FileInfo(40, 30, "RGB")] * 2)
    assert size == 30 and "centre-cropped" in why


def test_mixed_sizes_use_the_median_shorter_side_rounded_and_clamped() -> None:
    size, why = choose_size([FileInfo(100, 61, "RGB"), FileInfo(70, 70, "RGB"), FileInfo(300, 90, "RGB")])
    assert size == 72 and "median shorter side 70" in why
    size, why = choose_size([FileInfo(4000, 3000, "RGB"), FileInfo(1024, 768, "RGB")])
    assert size == 224 and "clamped to 224" in why
    assert choose_size([FileInfo(4, 4, "L")])[0] == 8


def test_channels_are_one_only_when_every_image_is_grayscale() -> None:
    assert choose_channels([FileInfo(8, 8, "L"), FileInfo(8, 8, "I;16")])[0] == 1
    assert choose_channels([FileInfo(8, 8, "L"), FileInfo(8, 8, "RGB")])[0] == 3
    assert choose_channels([FileInfo(8, 8, "P")])[0] == 3  # a palette may hold colours


def test_default_augmentation_never_flips_rotates_or_recolours() -> None:
    small, why = default_augment(28)
    assert (
        small.crop_padding == 1
        and default_augment(64)[0].crop_padding == 4
        and not small.resized_crop
        and "label-safe" in why
    )
    large, _ = default_augment(224)
    assert large.resized_crop and not large.crop_padding
    for config in (small, large):
        assert not config.hflip and not config.rotation and not config.color_jitter


def test_a_grayscale_digits_folder_trains_at_its_natural_size(tmp_path: Path) -> None:
    write_digits_folder(tmp_path / "digits", size=28)
    b = load_dataset(f"folder:{tmp_path / 'digits'}")
    assert (b.input_size, b.channels) == (28, 1)
    assert b.train.pixels().shape[1:] == (1, 28, 28) and len(b.test) == 355
    assert b.default_augment.crop_padding == 1 and not b.default_augment.hflip
    assert "28×28 L → input 28×28×1" in b.summary_line and "imbalance" in b.summary_line
    assert b.preprocess_spec().input_size == (28, 28) and b.preprocess_spec().channels == 1
    given = load_dataset(f"folder:{tmp_path / 'digits'}", DataOptions(image_size=16, channels=3))
    assert (given.input_size, given.channels) == (16, 3) and "size given" in given.summary_line


def test_an_empty_class_folder_is_an_error(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "ds", per_class=3)
    (tmp_path / "ds" / "owl").mkdir()
    with pytest.raises(JetfleetError, match=r"class folder .*owl has no images"):
        load_dataset(f"folder:{tmp_path / 'ds'}")


def test_a_single_class_is_an_error(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "ds", classes=("cat",), per_class=3)
    with pytest.raises(JetfleetError, match=r"single class \('cat'\); a classifier needs at least two"):
        load_dataset(f"folder:{tmp_path / 'ds'}")


def test_skip_bad_trains_without_the_unreadable_files(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "ds", per_class=6)
    (tmp_path / "ds" / "dog" / "zz-bad.png").write_bytes(b"not an image")
    good = Image.open(next((tmp_path / "ds" / "cat").glob("*.png")))
    good.save(tmp_path / "ds" / "fox" / "zz-cut.png")
    data = (tmp_path / "ds" / "fox" / "zz-cut.png").read_bytes()
    (tmp_path / "ds" / "fox" / "zz-cut.png").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(JetfleetError, match=r"2 unreadable image\(s\): .*zz-bad\.png .*zz-cut\.png"):
        load_dataset(f"folder:{tmp_path / 'ds'}")
    lines: list[str] = []
    b = load_dataset(f"folder:{tmp_path / 'ds'}", DataOptions(skip_bad=True, log=lines.append))
    assert len(b.train) + len(b.val) + len(b.test) == 18
    assert any("--skip-bad: training without 2" in line for line in lines)


def test_hidden_files_are_not_images(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "ds", per_class=4)
    (tmp_path / "ds" / "cat" / "._0.png").write_bytes(b"AppleDouble")
    (tmp_path / "ds" / "dog" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "ds" / "dog" / ".ipynb_checkpoints" / "x.png").write_bytes(b"")
    b = load_dataset(f"folder:{tmp_path / 'ds'}")
    assert len(b.train) + len(b.val) + len(b.test) == 12


def test_a_decompression_bomb_is_an_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_folder(tmp_path / "ds", per_class=4)
    Image.new("RGB", (60, 60)).save(tmp_path / "ds" / "cat" / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 3,600 pixels is now beyond twice the limit: a "bomb"
    with pytest.raises(JetfleetError, match=r"1 unreadable image\(s\): .*big\.png .*decompression bomb"):
        load_dataset(f"folder:{tmp_path / 'ds'}", DataOptions(workers=0, image_size=8))
