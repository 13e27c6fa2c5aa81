from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.viz.conv_demo import (
    KERNELS,
    conv2d_naive,
    conv2d_torch,
    gradient_magnitude,
    run_conv_demo,
    sample_image,
    worked_example,
)

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def small_photo() -> np.ndarray:
    return sample_image("china.jpg", height=32)


def test_sample_image_is_grayscale_in_unit_range() -> None:
    img = sample_image("flower.jpg", height=40)
    assert img.ndim == 2
    assert img.shape[0] == 40
    assert img.shape[1] == 60  # 427×640 keeps its aspect ratio
    assert 0.0 <= img.min() < img.max() <= 1.0


def test_unknown_sample_image_is_a_user_error() -> None:
    with pytest.raises(JetfleetError, match=r"unknown sample image 'nope\.jpg'"):
        sample_image("nope.jpg")


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("name", list(KERNELS))
def test_naive_loop_matches_torch(small_photo: np.ndarray, name: str, padding: str) -> None:
    naive = conv2d_naive(small_photo, KERNELS[name], padding)  # type: ignore[arg-type]
    library = conv2d_torch(small_photo, KERNELS[name], padding)  # type: ignore[arg-type]
    assert naive.shape == library.shape
    assert np.max(np.abs(naive - library)) < TOLERANCE


def test_output_shapes_for_each_padding(small_photo: np.ndarray) -> None:
    h, w = small_photo.shape
    assert conv2d_naive(small_photo, KERNELS["Sobel x"], "same").shape == (h, w)
    assert conv2d_naive(small_photo, KERNELS["Sobel x"], "valid").shape == (h - 2, w - 2)
    assert conv2d_naive(small_photo, np.ones((3, 5)), "valid").shape == (h - 2, w - 4)


def test_hand_computed_values() -> None:
    image = np.arange(1, 10, dtype=np.float64).reshape(3, 3)
    sobel_x = KERNELS["Sobel x"]
    # (-1·1 + 1·3) + (-2·4 + 2·6) + (-1·7 + 1·9) = 2 + 4 + 2
    assert conv2d_naive(image, sobel_x, "valid").tolist() == [[8.0]]
    same = conv2d_naive(image, sobel_x, "same")
    assert same[1, 1] == 8.0
    # Top-left pixel sees zeros above and to the left: 2·2 + 1·5
    assert same[0, 0] == 9.0


def test_kernel_is_not_flipped() -> None:
    """Deep-learning 'convolution' is cross-correlation: a delta image returns the kernel rotated 180°."""
    delta = np.zeros((3, 3))
    delta[1, 1] = 1.0
    kernel = np.arange(9, dtype=np.float64).reshape(3, 3)
    expected = kernel[::-1, ::-1]
    np.testing.assert_array_equal(conv2d_naive(delta, kernel, "same"), expected)
    np.testing.assert_allclose(conv2d_torch(delta, kernel, "same"), expected, atol=TOLERANCE)


def test_edge_kernels_ignore_flat_regions() -> None:
    flat = np.full((6, 7), 0.7)
    for name in ("Sobel x", "Sobel y", "Laplacian"):
        np.testing.assert_allclose(conv2d_naive(flat, KERNELS[name], "valid"), 0.0, atol=1e-12)
    np.testing.assert_allclose(conv2d_naive(flat, KERNELS["Box blur"], "valid"), 0.7)
    np.testing.assert_allclose(conv2d_naive(flat, KERNELS["Sharpen"], "valid"), 0.7)


def test_same_padding_rejects_even_kernels(small_photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="odd-sized kernel"):
        conv2d_naive(small_photo, np.ones((2, 2)), "same")


def test_gradient_magnitude_is_euclidean() -> None:
    assert gradient_magnitude(np.array([[3.0]]), np.array([[4.0]])).item() == pytest.approx(5.0)


def test_worked_example_equals_the_loop(small_photo: np.ndarray) -> None:
    kernel = KERNELS["Laplacian"]
    same = conv2d_naive(small_photo, kernel, "same")
    valid = conv2d_naive(small_photo, kernel, "valid")
    for row, col in [(0, 0), (5, 9), (small_photo.shape[0] - 1, 3)]:
        ex = worked_example(small_photo, kernel, row, col)
        assert ex.patch.shape == (3, 3)
        assert ex.value == pytest.approx(same[row, col])
    ex = worked_example(small_photo, kernel, 5, 9)
    assert ex.value == pytest.approx(valid[4, 8])


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_run_conv_demo_writes_figure_and_reports_agreement(tmp_path: Path, padding: str, assert_png) -> None:
    out = tmp_path / "figs" / "conv.png"
    result = run_conv_demo(out, image="china.jpg", height=40, padding=padding)  # type: ignore[arg-type]
    assert result.out_path == out
    assert_png(out, min_size=(1000, 700))
    assert set(result.max_abs_diff) == set(KERNELS)
    assert all(d < TOLERANCE for d in result.max_abs_diff.values())
    assert result.image_shape == (40, 60)
    img = sample_image("china.jpg", 40)
    naive = conv2d_naive(img, KERNELS["Sobel x"], padding)  # type: ignore[arg-type]
    ex = result.example
    index = (ex.row, ex.col) if padding == "same" else (ex.row - 1, ex.col - 1)
    assert ex.value == pytest.approx(naive[index])
    assert abs(ex.value) > 0.1  # it picked a real edge, not a flat patch
    assert not list(out.parent.glob(".*tmp*")), "a temporary file was left behind"
