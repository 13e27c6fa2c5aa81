"""The agent's image pipeline: real files in, the controller's exact model inputs out, hostile files refused."""

from __future__ import annotations

import inspect
import io
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from fixtures import class_images, tiny_onnx_classifier, write_image_folder
from PIL import Image, ImageFile

from jetfleet.agent import imaging
from jetfleet.agent.decode import (
    DecodeOptions,
    decode_image,
    iter_encoded,
    iter_folder,
    preprocess_file,
    preprocess_image,
    to_model_mode,
)
from jetfleet.agent.imaging import ImageError, load_folder, load_test_set, normalize_uint8
from jetfleet.common.errors import JetfleetError
from jetfleet.common.preprocess import PreprocessSpec

LABELS = ("cat", "dog", "fox")


def spec_of(size: int | tuple[int, int] = 16, channels: int = 3, labels: tuple[str, ...] = LABELS) -> PreprocessSpec:
    hw = (size, size) if isinstance(size, int) else size
    return PreprocessSpec(hw, channels, (0.4, 0.5, 0.6)[:channels], (0.2, 0.25, 0.3)[:channels], labels)


IDENTITY_L = PreprocessSpec((2, 2), 1, (0.0,), (1.0,))  # output = pixel / 255


def encode(img: Image.Image | np.ndarray, fmt: str = "PNG", **kw: object) -> bytes:
    pil = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    pil.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG of any size, a few KB per 100 MP: streamed zlib of zero rows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ----------------------------------------------------------------------------- values


def test_grayscale_pixels_are_scaled_and_normalized() -> None:
    img = Image.fromarray(np.array([[0, 51], [102, 255]], dtype=np.uint8))
    spec = PreprocessSpec((2, 2), 1, (0.5,), (0.25,))
    out = preprocess_file(encode(img), spec)
    assert out.dtype == np.float32 and out.shape == (1, 2, 2)
    np.testing.assert_allclose(out[0], [[-2.0, -1.2], [-0.4, 2.0]], atol=1e-6)


def test_rgb_channels_are_normalized_with_their_own_mean_and_std() -> None:
    img = Image.new("RGB", (5, 3), (10, 20, 30))
    out = preprocess_image(img, spec_of(4))
    assert out.shape == (3, 4, 4)
    expected = [(v / 255 - m) / s for v, m, s in zip((10, 20, 30), (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))]
    np.testing.assert_allclose(out.reshape(3, -1), np.repeat(np.array(expected)[:, None], 16, 1), atol=1e-6)


def test_centre_crop_keeps_the_middle_of_a_wide_image() -> None:
    bands = np.repeat(np.array([0, 128, 255], dtype=np.uint8), 4)[None].repeat(4, 0)  # 4 high, 12 wide
    out = preprocess_file(encode(bands), PreprocessSpec((4, 4), 1, (0.0,), (1.0,)))
    np.testing.assert_allclose(out, 128 / 255, atol=1e-7)  # columns 4..7, no resize needed


def test_non_square_input_size_is_height_then_width() -> None:
    rows = (np.arange(16, dtype=np.uint8) * 10)[:, None].repeat(8, 1)  # 16 high, 8 wide, row r = 10 r
    out = preprocess_file(encode(rows), PreprocessSpec((4, 8), 1, (0.0,), (1.0,)))
    assert out.shape == (1, 4, 8)
    np.testing.assert_allclose(out[0, :, 0] * 255, [60, 70, 80, 90], atol=1e-4)  # rows 6..9: the centre


@pytest.fixture
def varied_files(tmp_path: Path) -> list[Path]:
    """Training-style PNGs plus every kind of file the controller also reads: JPEG, GIF, RGBA, L, 1-bit, BMP."""
    root = write_image_folder(tmp_path / "folder", per_class=3)
    paths = sorted(root.rglob("*.png"))
    extra = tmp_path / "extra"
    extra.mkdir()
    big = Image.fromarray(noise(37, 50, seed=1))
    rgba = Image.fromarray(np.dstack([noise(21, 30, seed=2), noise(21, 30, seed=3)[..., 0]]))
    files = {
        "photo.jpg": (big, "JPEG"),
        "palette.gif": (big.quantize(16), "GIF"),
        "alpha.png": (rgba, "PNG"),
        "gray.png": (big.convert("L"), "PNG"),
        "bits.png": (big.convert("1"), "PNG"),
        "small.bmp": (Image.fromarray(noise(9, 13, seed=4)), "BMP"),
    }
    for name, (img, fmt) in files.items():
        img.save(extra / name, fmt)
        paths.append(extra / name)
    return paths


@pytest.mark.parametrize("channels", [1, 3])
def test_inputs_equal_the_controllers_for_the_same_files(
    varied_files: list[Path], channels: int, tmp_path: Path
) -> None:
    """Same decode, same Pillow bilinear resize, same crop, same float32 ops: bit-identical, not just close.

    The controller's side is its training path: the decoded cache, then the registry's materialization.
    """
    torch = pytest.importorskip("torch")
    from jetfleet.controller.data.decoded import decode_images
    from jetfleet.controller.data.splits import TensorSplit
    from jetfleet.controller.registry.optimize import _materialize

    spec = spec_of(16, channels)
    decoded = decode_images(varied_files, 16, channels, tmp_path / "cache", log=lambda _line: None)
    assert not decoded.bad
    split = TensorSplit(decoded.images, torch.zeros(len(varied_files), dtype=torch.long))
    theirs = _materialize(split, None, spec.mean, spec.std)
    ours = np.stack([preprocess_file(p, spec) for p in varied_files])
    assert ours.shape == theirs.normalized.shape == (len(varied_files), channels, 16, 16)
    np.testing.assert_array_equal(ours, theirs.normalized)


def test_normalize_uint8_is_bit_identical_to_the_controller_and_float32() -> None:
    pytest.importorskip("torch")
    import torch

    from jetfleet.controller.data.splits import TensorSplit
    from jetfleet.controller.registry.optimize import _materialize

    spec = spec_of((5, 6))
    images = np.random.default_rng(0).integers(0, 256, (7000, 3, 5, 6), dtype=np.uint8)  # several chunks
    out = normalize_uint8(images, spec)
    theirs = _materialize(TensorSplit(torch.from_numpy(images), torch.zeros(7000)), None, spec.mean, spec.std)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, theirs.normalized)
    exact = (images / 255.0 - np.array(spec.mean)[:, None, None]) / np.array(spec.std)[:, None, None]
    np.testing.assert_allclose(out, exact, atol=1e-6)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 3, 5, 6), np.float32), "expected uint8"),
        (np.zeros((3, 5, 6), np.uint8), "expected uint8"),
        (np.zeros((2, 1, 5, 6), np.uint8), "images are 1×5×6 but the model expects 3×5×6"),
    ],
)
def test_normalize_uint8_rejects_wrong_batches(images: np.ndarray, message: str) -> None:
    with pytest.raises(JetfleetError, match=message):
        normalize_uint8(images, spec_of((5, 6)))


# ----------------------------------------------------------------------------- modes


def test_sixteen_bit_png_is_rescaled_not_clipped() -> None:
    levels = np.array([[0, 64], [128, 255]], dtype=np.uint16)
    data = encode(Image.fromarray(levels * 257))
    img = decode_image(data)
    assert img.mode == "I;16"
    assert np.asarray(img.convert("L")).tolist() == [[0, 255], [255, 255]]  # plain Pillow (the controller today) clips
    np.testing.assert_allclose(preprocess_file(data, IDENTITY_L)[0] * 255, levels, atol=1e-4)


def test_float_and_int32_tiffs_are_scaled() -> None:
    floats = np.array([[0.0, 0.5], [1.0, np.nan]], dtype=np.float32)
    assert decode_image(encode(floats, "TIFF")).mode == "F"
    np.testing.assert_allclose(preprocess_file(encode(floats, "TIFF"), IDENTITY_L)[0] * 255, [[0, 128], [255, 0]])
    ints = np.array([[0, 2570], [65535, 70000]], dtype=np.int32)
    assert decode_image(encode(ints, "TIFF")).mode == "I"
    np.testing.assert_allclose(preprocess_file(encode(ints, "TIFF"), IDENTITY_L)[0] * 255, [[0, 10], [255, 255]])


def test_alpha_is_dropped_like_training_not_composited() -> None:
    rgba = Image.new("RGBA", (2, 2), (200, 100, 50, 0))  # fully transparent
    spec = PreprocessSpec((2, 2), 3, (0.0,) * 3, (1.0,) * 3)
    out = preprocess_file(encode(rgba), spec)
    np.testing.assert_allclose(out[:, 0, 0] * 255, [200, 100, 50], atol=1e-4)
    la = Image.new("LA", (2, 2), (77, 0))
    np.testing.assert_allclose(preprocess_file(encode(la), IDENTITY_L) * 255, 77, atol=1e-4)


def test_palette_gif_and_multipage_tiff_give_their_first_frame() -> None:
    red, blue = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    spec = PreprocessSpec((2, 2), 3, (0.0,) * 3, (1.0,) * 3)
    for fmt in ("GIF", "TIFF"):
        data = encode(red, fmt, save_all=True, append_images=[blue])
        assert Image.open(io.BytesIO(data)).n_frames == 2
        np.testing.assert_allclose(preprocess_file(data, spec)[:, 0, 0], [1, 0, 0], atol=1e-6)


def test_cmyk_converts_and_lab_and_la_are_refused() -> None:
    white = encode(Image.new("CMYK", (2, 2), (0, 0, 0, 0)), "TIFF")
    np.testing.assert_allclose(preprocess_file(white, IDENTITY_L), 1.0)
    with pytest.raises(ImageError, match="unsupported mode 'LAB'"):
        preprocess_file(encode(Image.new("LAB", (2, 2)), "TIFF"), IDENTITY_L)
    with pytest.raises(ImageError, match="unsupported mode 'La'"):
        to_model_mode(Image.new("La", (2, 2)), 1)


def test_exif_orientation_is_applied_unless_disabled() -> None:
    img = Image.fromarray((np.arange(6, dtype=np.uint8) * 40).reshape(2, 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = encode(img, exif=exif)
    upright = decode_image(data)
    assert upright.size == (2, 3)
    np.testing.assert_array_equal(np.asarray(upright), np.asarray(img.transpose(Image.Transpose.ROTATE_270)))
    assert decode_image(data, exif_transpose=False).size == (3, 2)


# ----------------------------------------------------------------------------- hostile input


def test_bomb_generator_makes_real_images() -> None:
    img = decode_image(png_bomb(300, 200))
    assert img.size == (300, 200) and img.getextrema() == (0, 0)


@pytest.mark.parametrize(
    ("side", "message"),
    [
        (8000, "image is 8000x8000 = 64000000 pixels, over the 50000000-pixel limit"),  # our header check
        (10000, "image is 100000000 pixels, over the 50000000-pixel limit"),  # Pillow's warning, made an error
        (20000, "image is 400000000 pixels, over the 50000000-pixel limit"),  # Pillow's DecompressionBombError
    ],
)
def test_decompression_bombs_are_refused(side: int, message: str) -> None:
    bomb = png_bomb(side, side)
    assert len(bomb) < 300_000
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    with pytest.raises(ImageError, match=message):
        decode_image(bomb)
    assert limit == Image.MAX_IMAGE_PIXELS and warnings.filters == filters  # no global left changed


def test_max_pixels_is_the_callers_limit() -> None:
    with pytest.raises(ImageError, match="300x200 = 60000 pixels, over the 50000-pixel limit"):
        decode_image(png_bomb(300, 200), max_pixels=50_000)


BOMB_SCRIPT = """
import re, struct, zlib
from pathlib import Path
from jetfleet.agent.decode import ImageError, decode_image
def peak_mb():  # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1]) / 1024
bombs = [png_bomb(8000, 8000), png_bomb(20000, 20000)]
before = peak_mb()
for bomb in bombs:
    try:
        decode_image(bomb)
    except ImageError:
        pass
refused = peak_mb() - before
decode_image(png_bomb(6000, 5000), max_pixels=40_000_000)  # control: 30 MB of 1-byte pixels really decoded
print(refused, peak_mb() - before - refused)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to read peak memory")
def test_bombs_are_refused_before_allocating() -> None:
    """Peak RSS of a fresh process: refusing 464 MP of bombs must cost less than decoding a 30 MP one."""
    done = subprocess.run(
        [sys.executable, "-c", inspect.getsource(png_bomb) + BOMB_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    refused_mb, control_mb = map(float, done.stdout.split())
    assert control_mb > 20, "the measurement must see a real decode"
    assert refused_mb < 10


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "PPM"])
def test_truncated_files_are_refused(fmt: str) -> None:
    data = encode(noise(), fmt)
    with pytest.raises(ImageError, match="truncated image data"):
        decode_image(data[: len(data) // 2])


def test_truncated_webp_is_refused() -> None:
    data = encode(noise(), "WEBP")
    with pytest.raises(ImageError, match=r"corrupt image data|truncated image data"):
        decode_image(data[: len(data) // 2])


def test_global_truncation_tolerance_is_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = encode(noise(), "PNG")
    with pytest.raises(JetfleetError, match="LOAD_TRUNCATED_IMAGES") as caught:
        decode_image(data[: len(data) // 2])
    assert not isinstance(caught.value, ImageError)  # a process problem, not one bad item


def test_non_images_are_named_as_such(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not really a picture\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"  # Pillow could open it; we must not
    for source in (text, np.random.default_rng(0).bytes(5000), eps):
        with pytest.raises(ImageError, match=r"not an image file \(cannot identify format"):
            decode_image(source)
    for source in (empty, b""):
        with pytest.raises(ImageError, match=r"empty file \(0 bytes\)"):
            decode_image(source)


def test_files_over_the_byte_limit_are_refused_before_reading(tmp_path: Path) -> None:
    data = encode(noise())
    path = tmp_path / "big.png"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(ImageError, match=f"file is {len(data)} bytes, over the 100-byte limit"):
            decode_image(source, max_bytes=100)


def test_paths_that_are_not_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # opening it for reading would block forever
    for path in (fifo, tmp_path):
        with pytest.raises(ImageError, match="not a regular file"):
            decode_image(path)
    with pytest.raises(ImageError, match="cannot open file"):
        decode_image(tmp_path / "missing.png")


# ----------------------------------------------------------------------------- folders and batches


def corrupt(folder: Path) -> dict[str, str]:
    """Bad files in a class folder tree, and the reason each must be reported with."""
    (folder / "cat" / "random.png").write_bytes(np.random.default_rng(1).bytes(3000))
    jpeg = encode(noise(), "JPEG")
    (folder / "dog" / "half.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "fox" / "empty.png").write_bytes(b"")
    outside = folder.parent / "outside.png"
    outside.write_bytes(encode(noise()))
    (folder / "cat" / "escape.png").symlink_to(outside)
    (folder / "cat" / "dangling.png").symlink_to(folder / "nowhere.png")
    return {
        "cat/random.png": "not an image file",
        "dog/half.jpg": "truncated image data",
        "fox/empty.png": "empty file",
        "cat/escape.png": "symlink points outside the folder",
        "cat/dangling.png": "broken symlink",
    }


def decorate(folder: Path) -> None:
    """Things a listing must skip silently: hidden files and folders, non-image files."""
    (folder / "cat" / ".hidden.png").write_bytes(b"junk")
    (folder / ".cache").mkdir()
    (folder / "dog" / "README.txt").write_text("notes")
    (folder / "fox" / "deeper").mkdir()
    Image.fromarray(noise(20, 20)).save(folder / "fox" / "deeper" / "nested.png")
    (folder / "dog" / "alias.png").symlink_to(folder / "cat" / "0.png")  # inside: allowed


def test_mixed_folder_yields_every_good_image_labelled_and_reports_the_bad(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", classes=LABELS, per_class=4)
    good = {p.relative_to(root).as_posix() for p in root.rglob("*.png")}
    bad = corrupt(root)
    decorate(root)
    good |= {"fox/deeper/nested.png", "dog/alias.png"}
    spec = PreprocessSpec((8, 8), 1, (0.5,), (0.25,), ("dog", "fox", "cat"))  # label order is the model's
    folder = load_folder(root, spec)
    assert folder.labelled and len(folder) == len(good) + 3  # 3 bad files are only found bad when read
    batches = list(iter_folder(folder, spec, batch_size=5))
    assert all(len(b.images) <= 5 and b.images.dtype == np.float32 for b in batches)
    names = [n for b in batches for n in b.names]
    assert names == sorted(good)
    labels = [label for b in batches for label in b.labels]
    assert labels == [spec.labels.index(n.split("/")[0]) for n in names]
    errors = dict(e for b in batches for e in b.errors)
    assert errors.keys() == bad.keys()
    for name, reason in bad.items():
        assert reason in errors[name]
    images = np.concatenate([b.images for b in batches])
    np.testing.assert_array_equal(images[names.index("cat/0.png")], preprocess_file(root / "cat" / "0.png", spec))
    session = __import__("onnxruntime").InferenceSession(str(tiny_onnx_classifier(tmp_path / "m.onnx")))
    logits = [session.run(None, {"input": b.images})[0] for b in batches if len(b.images)]
    assert sum(len(x) for x in logits) == len(good)  # every good image classified


def test_flat_folder_is_unlabelled_and_sorted(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", "c.webp"):
        Image.fromarray(noise(10, 12)).save(tmp_path / name, "JPEG" if name.endswith("JPG") else None)
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / "labels.csv").write_text("a,b")
    folder = load_folder(tmp_path, spec_of())
    assert not folder.labelled
    assert [i.name for i in folder.items] == ["a.JPG", "b.png", "c.webp"]
    (batch,) = iter_folder(folder, spec_of(), batch_size=8)
    assert batch.names == ["a.JPG", "b.png", "c.webp"] and batch.labels == [None] * 3 and not batch.errors


def test_class_folder_outside_the_root_is_refused(tmp_path: Path) -> None:
    elsewhere = write_image_folder(tmp_path / "elsewhere", classes=("fox",), per_class=2) / "fox"
    root = write_image_folder(tmp_path / "root", classes=("cat",), per_class=2)
    (root / "fox").symlink_to(elsewhere, target_is_directory=True)
    folder = load_folder(root, spec_of())
    assert [i.name for i in folder.items] == ["cat/0.png", "cat/1.png"]
    assert folder.refused == (("fox/", f"symlink points outside the folder (to {elsewhere.resolve()})"),)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: [(r / d).mkdir() for d in ("cat", "wolf", "bear")], "not labels of the model: bear, wolf"),
        (lambda r: [(r / "cat").mkdir(), Image.new("L", (4, 4)).save(r / "x.png")], "mixes class folders"),
        (lambda r: None, "does not exist"),
    ],
)
def test_folder_errors_name_the_problem(tmp_path: Path, make: object, message: str) -> None:
    root = tmp_path / "root"
    if message != "does not exist":
        root.mkdir()
        make(root)  # type: ignore[operator]
    with pytest.raises(JetfleetError, match=message):
        load_folder(root, spec_of())


def test_class_folders_need_a_model_with_labels(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    with pytest.raises(JetfleetError, match="records no label names"):
        load_folder(tmp_path, spec_of(labels=()))


def test_folder_is_read_lazily_batch_by_batch(tmp_path: Path) -> None:
    for i in range(6):
        Image.fromarray(noise(8, 8, seed=i)).save(tmp_path / f"{i}.png")
    batches = iter_folder(load_folder(tmp_path, spec_of(4)), spec_of(4), batch_size=2)
    first = next(batches)
    for i in range(2, 6):
        (tmp_path / f"{i}.png").unlink()  # files not yet read: they fail later, proving nothing was preloaded
    rest = list(batches)
    assert first.names == ["0.png", "1.png"]
    assert [len(b.images) for b in rest] == [0] and [n for n, _ in rest[0].errors] == [
        "2.png",
        "3.png",
        "4.png",
        "5.png",
    ]


def test_iter_encoded_batches_and_reports(tmp_path: Path) -> None:
    spec = spec_of(8, 3)
    good = [(f"g{i}", encode(noise(10, 9, seed=i)), i % 3) for i in range(5)]
    items = [*good[:2], ("junk", b"\x00" * 40, 1), *good[2:], ("none", b"", None)]
    batches = list(iter_encoded(items, spec, batch_size=2))
    assert [b.names for b in batches] == [["g0", "g1"], ["g2", "g3"], ["g4"]]
    assert [b.labels for b in batches] == [[0, 1], [2, 0], [1]]
    assert batches[1].errors[0][0] == "junk" and batches[2].errors[0][0] == "none"
    np.testing.assert_array_equal(batches[1].images[1], preprocess_file(good[3][1], spec))
    with pytest.raises(JetfleetError, match="batch size"):
        next(iter_encoded(items, spec, batch_size=0))


def test_decode_options_reach_the_iterators() -> None:
    items = [("big", encode(noise(20, 20)), None)]
    (batch,) = iter_encoded(items, spec_of(8), options=DecodeOptions(max_pixels=100))
    assert batch.names == [] and "over the 100-pixel limit" in batch.errors[0][1]


# ----------------------------------------------------------------------------- test sets


def save_test_set(path: Path, images: np.ndarray, labels: np.ndarray, names: list[str]) -> Path:
    """What ``controller.registry.optimize._save_npz`` writes."""
    np.savez_compressed(path, images=images, labels=labels, label_names=np.asarray(names))
    return path


def test_controller_test_set_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from jetfleet.controller.registry.optimize import EvalData, _save_npz

    images, labels = class_images(10, 3, 8, 1)
    spec = PreprocessSpec((8, 8), 1, (0.5,), (0.25,), LABELS)
    _save_npz(tmp_path / "t.npz", EvalData(images, labels, normalize_uint8(images, spec)), list(LABELS))
    test_set = load_test_set(tmp_path / "t.npz", spec)
    assert test_set.label_names == LABELS and len(test_set) == 10
    np.testing.assert_array_equal(test_set.images, images)
    chunks = list(test_set.batches(spec, batch_size=4))
    assert [len(x) for x, _ in chunks] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in chunks]), normalize_uint8(images, spec))
    np.testing.assert_array_equal(np.concatenate([y for _, y in chunks]), labels)


def test_test_set_shape_must_match_the_model(tmp_path: Path) -> None:
    images, labels = class_images(4, 3, 32, 3)
    path = save_test_set(tmp_path / "t.npz", images, labels, list(LABELS))
    with pytest.raises(JetfleetError, match="test set is 3×32×32 but the model expects 1×8×8"):
        load_test_set(path, PreprocessSpec((8, 8), 1, (0.5,), (0.25,), LABELS))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))  # unpickling would create the marker file


def test_pickled_test_sets_are_refused_without_running_them(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    obj_npz = tmp_path / "objects.npz"
    np.savez(
        obj_npz,
        images=np.zeros((1, 1, 2, 2), np.uint8),
        labels=np.zeros(1, np.int64),
        label_names=np.array([_Evil(marker)], dtype=object),
    )
    with pytest.raises(JetfleetError, match="object arrays, which need pickle; refused"):
        load_test_set(obj_npz)
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps({"images": _Evil(marker)}))
    with pytest.raises(JetfleetError, match="would need pickle, which is refused"):
        load_test_set(raw)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": np.zeros((2, 1, 4, 4), np.uint8), "labels": np.zeros(2, np.int64)}, "lacks 'label_names'"),
        ({"images": np.zeros((2, 1, 4, 4), np.float32)}, "images must be uint8"),
        ({"images": np.zeros((2, 4, 4), np.uint8)}, "images must be uint8 \\(N, C, H, W\\)"),
        ({"labels": np.zeros(3, np.int64)}, "2 images but 3 labels"),
        ({"labels": np.zeros(2, np.float32)}, "labels must be a 1-D integer array"),
        ({"labels": np.array([0, 3])}, "label 3 but only 3 label names"),
        ({"labels": np.array([0, -1])}, "negative label -1"),
    ],
)
def test_malformed_test_sets_name_the_problem(tmp_path: Path, arrays: dict, message: str) -> None:
    base = {
        "images": np.zeros((2, 1, 4, 4), np.uint8),
        "labels": np.zeros(2, np.int64),
        "label_names": np.asarray(LABELS),
    }
    content = {**base, **arrays}
    if "lacks" in message:
        content = arrays
    np.savez_compressed(tmp_path / "t.npz", **content)
    with pytest.raises(JetfleetError, match=message):
        load_test_set(tmp_path / "t.npz")


def test_test_set_labels_must_be_the_models(tmp_path: Path) -> None:
    images, labels = class_images(4, 3, 8, 1)
    path = save_test_set(tmp_path / "t.npz", images, labels, ["a", "b", "c"])
    with pytest.raises(JetfleetError, match=r"test set labels \(a, b, c\) differ from the model's \(cat, dog, fox\)"):
        load_test_set(path, PreprocessSpec((8, 8), 1, (0.5,), (0.25,), LABELS))
    assert load_test_set(path).label_names == ("a", "b", "c")  # without a spec, only self-consistency


def test_not_an_npz_archive(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(JetfleetError, match=r"single \.npy array"):
        load_test_set(tmp_path / "a.npy")
    with pytest.raises(JetfleetError, match="cannot read test set"):
        load_test_set(tmp_path / "missing.npz")
    (tmp_path / "cut.npz").write_bytes(
        save_test_set(tmp_path / "ok.npz", *class_images(4, 3, 8, 1), list(LABELS)).read_bytes()[:200]
    )
    with pytest.raises(JetfleetError, match="test set"):
        load_test_set(tmp_path / "cut.npz")


def test_module_never_imports_torch() -> None:
    code = "import sys, jetfleet.agent.decode; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
    assert imaging.__name__ == "jetfleet.agent.imaging"


def test_test_sets_and_normalization_never_import_pillow(tmp_path: Path) -> None:
    """Pillow (~3 MiB of a device's memory) is for decoding files: a test-set job never loads it."""
    path = save_test_set(tmp_path / "ts.npz", *class_images(4, 3, 8, 1), list(LABELS))
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from jetfleet.agent import imaging, inputs
        from jetfleet.common.preprocess import PreprocessSpec

        path, spec = Path(sys.argv[1]), PreprocessSpec((8, 8), 1, (0.5,), (0.25,), ("cat", "dog", "fox"))
        job = inputs.test_set_input(path, spec, batch_size=3, limit=0)
        assert sum(len(b.names) for b in job.batches) == job.total == 4
        imaging.normalize_uint8(imaging.load_test_set(path, spec).images, spec)
        print(sorted(m for m in sys.modules if m.split(".")[0] == "PIL" or m == "jetfleet.agent.decode"))
        """
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"
