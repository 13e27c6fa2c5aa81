"""What a convolution layer computes, written out by hand next to the library call.

The naive version loops over output positions and, at each one, multiplies
the image patch under the kernel element by element and sums the products.
That is exactly what ``torch.nn.functional.conv2d`` does, only vectorised:
like every deep-learning library it computes a *cross-correlation* (the
kernel is not flipped), so the loop below does not flip it either. The demo
puts the two side by side on a real photograph with classic hand-made
kernels, the same ones a CNN's first layer tends to learn by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_path

Padding = Literal["valid", "same"]
FloatImage = npt.NDArray[np.float64]

SAMPLE_IMAGES = ("china.jpg", "flower.jpg")
"""The photographs scikit-learn ships inside its wheel: real pixels, no download."""

KERNELS: dict[str, FloatImage] = {
    "Sobel x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
    "Sobel y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
    "Sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "Box blur": np.full((3, 3), 1 / 9, dtype=np.float64),
}
"""Hand-made 3×3 kernels: two gradient directions, a second derivative, and two smoothers."""


@dataclass(frozen=True)
class WorkedExample:
    """One output pixel computed in full: patch ⊙ kernel, summed."""

    row: int
    col: int
    patch: FloatImage
    kernel: FloatImage

    @property
    def products(self) -> FloatImage:
        return self.patch * self.kernel

    @property
    def value(self) -> float:
        return float(self.products.sum())


@dataclass(frozen=True)
class ConvDemoResult:
    """Where the figure went and how far the hand-written loop is from the library, per kernel."""

    out_path: Path
    max_abs_diff: dict[str, float]
    padding: Padding
    image_shape: tuple[int, int]
    example: WorkedExample


def sample_image(name: str = "china.jpg", height: int = 128) -> FloatImage:
    """A scikit-learn sample photo as grayscale floats in [0, 1], resized to ``height`` rows.

    Downsampling keeps the pure-Python loop to a fraction of a second while
    leaving enough structure (roof edges, petals) for the kernels to show.
    """
    if name not in SAMPLE_IMAGES:
        raise JetfleetError(f"unknown sample image {name!r}", hint=f"choose one of: {', '.join(SAMPLE_IMAGES)}")
    if height < 8:
        raise JetfleetError(f"sample image height must be at least 8 pixels, got {height}")
    from sklearn.datasets import load_sample_image  # slow import; only the demo needs it

    rgb = load_sample_image(name)
    gray = Image.fromarray(rgb).convert("L")  # ITU-R 601-2 luma, the usual grayscale
    width = max(1, round(gray.width * height / gray.height))
    small = gray.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.float64) / 255.0


def _check_kernel(kernel: FloatImage, padding: Padding) -> None:
    """Programming errors (not user input): the CLI only ever passes the built-in kernels."""
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be 2-D, got shape {kernel.shape}")
    if padding == "same" and (kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0):
        # An even kernel has no centre pixel, so "same" needs lopsided padding;
        # the demo keeps to odd kernels rather than explain torch's convention.
        raise ValueError(f"'same' padding needs an odd-sized kernel, got {kernel.shape}")


def zero_pad(image: FloatImage, kernel_shape: tuple[int, int]) -> FloatImage:
    """Surround ``image`` with ``k // 2`` zeros per side so the output keeps the input's size."""
    ph, pw = kernel_shape[0] // 2, kernel_shape[1] // 2
    padded = np.zeros((image.shape[0] + 2 * ph, image.shape[1] + 2 * pw), dtype=np.float64)
    padded[ph : ph + image.shape[0], pw : pw + image.shape[1]] = image
    return padded


def conv2d_naive(image: FloatImage, kernel: FloatImage, padding: Padding = "same") -> FloatImage:
    """2-D cross-correlation, one output pixel at a time: ``sum(patch * kernel)``.

    Deliberately slow and explicit so the arithmetic can be read line by
    line; :func:`conv2d_torch` is the same operation done by the library.
    """
    _check_kernel(kernel, padding)
    src = zero_pad(image, kernel.shape) if padding == "same" else np.asarray(image, dtype=np.float64)
    kh, kw = kernel.shape
    out_h, out_w = src.shape[0] - kh + 1, src.shape[1] - kw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"kernel {kernel.shape} is larger than the image {image.shape}")
    out = np.empty((out_h, out_w), dtype=np.float64)
    for i in range(out_h):
        for j in range(out_w):
            patch = src[i : i + kh, j : j + kw]
            out[i, j] = np.sum(patch * kernel)
    return out


def conv2d_torch(image: FloatImage, kernel: FloatImage, padding: Padding = "same") -> FloatImage:
    """The same cross-correlation through ``F.conv2d`` in float32, as a network layer runs it."""
    _check_kernel(kernel, padding)
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    w = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32))[None, None]
    with torch.no_grad():
        y = F.conv2d(x, w, padding=padding)
    return y[0, 0].double().numpy()


def gradient_magnitude(gx: FloatImage, gy: FloatImage) -> FloatImage:
    """Edge strength regardless of direction: ``sqrt(gx² + gy²)`` from the two Sobel responses."""
    return np.hypot(gx, gy)


def worked_example(image: FloatImage, kernel: FloatImage, row: int, col: int) -> WorkedExample:
    """The (zero-padded) patch centred on image pixel (``row``, ``col``), with the kernel over it.

    Its ``value`` is the 'same' output at (``row``, ``col``), and the 'valid'
    output at (``row - kh // 2``, ``col - kw // 2``).
    """
    padded = zero_pad(image, kernel.shape)
    kh, kw = kernel.shape
    return WorkedExample(row=row, col=col, patch=padded[row : row + kh, col : col + kw].copy(), kernel=kernel)


def _fraction(v: float) -> str:
    """Kernel weights as people write them (1/9, -2), not 0.1111."""
    frac = Fraction(v).limit_denominator(64)
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"


def _draw_grid(ax: Axes, values: FloatImage, x0: float, labels: list[str], title: str, signed: bool) -> None:
    """Draw a block of shaded, numbered cells whose left edge is at ``x0`` (row 0 on top)."""
    cmap = colormaps["RdBu_r" if signed else "gray"]
    scale = float(np.abs(values).max()) or 1.0
    h, w = values.shape
    for r in range(h):
        for c in range(w):
            v = float(values[r, c])
            rgba = cmap((v / scale + 1) / 2 if signed else float(np.clip(v, 0, 1)))
            ax.add_patch(Rectangle((x0 + c, h - 1 - r), 1, 1, facecolor=rgba, edgecolor="black", lw=0.8))
            luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
            ax.text(
                x0 + c + 0.5,
                h - 0.5 - r,
                labels[r * w + c],
                ha="center",
                va="center",
                fontsize=8,
                color="white" if luminance < 0.5 else "black",
                in_layout=False,  # inside the axes anyway; measuring ~100 labels doubles the layout time
            )
    ax.text(x0 + w / 2, h + 0.2, title, ha="center", va="bottom", fontsize=9, in_layout=False)


def _draw_worked_example(ax: Axes, ex: WorkedExample, kernel_name: str) -> None:
    """patch ⊙ kernel = products, Σ = value: the whole layer arithmetic for one pixel."""
    _draw_grid(ax, ex.patch, 0.0, [f"{v:.2f}" for v in ex.patch.ravel()], "image patch", signed=False)
    ax.text(3.6, 1.5, "⊙", ha="center", va="center", fontsize=18)
    _draw_grid(ax, ex.kernel, 4.2, [_fraction(v) for v in ex.kernel.ravel()], kernel_name, signed=True)
    ax.text(7.8, 1.5, "=", ha="center", va="center", fontsize=18)
    _draw_grid(ax, ex.products, 8.4, [f"{v:+.2f}" for v in ex.products.ravel()], "products", signed=True)
    ax.text(11.8, 1.5, f"Σ = {ex.value:+.3f}", ha="left", va="center", fontsize=13, fontweight="bold")
    ax.set_xlim(-0.3, 15.2)
    ax.set_ylim(-0.3, 4.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(
        f"one output pixel by hand: patch centred on row {ex.row}, col {ex.col} (red box on the original)", fontsize=10
    )


def _draw_kernels(ax: Axes) -> None:
    """Every kernel's weights, so each result panel can be read against what produced it."""
    for i, (name, kernel) in enumerate(KERNELS.items()):
        _draw_grid(ax, kernel, i * 4.0, [_fraction(v) for v in kernel.ravel()], name, signed=True)
    ax.set_xlim(-0.3, len(KERNELS) * 4.0 - 0.7)
    ax.set_ylim(-0.3, 4.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("kernels (weights as written; the library does not flip them)", fontsize=10)


def _show(fig: Figure, ax: Axes, img: FloatImage, title: str, mode: Literal["image", "signed", "magnitude"]) -> None:
    """One image panel: pixels in [0, 1], a signed response centred on zero, or a magnitude.

    Colour limits come from the interior because zero padding makes the
    border look like a strong edge, which would otherwise wash out the rest.
    """
    inner = img[1:-1, 1:-1] if min(img.shape) > 2 else img
    if mode == "signed":
        lim = float(np.abs(inner).max()) or 1.0
        im = ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
        fig.colorbar(im, ax=ax, shrink=0.8)
    elif mode == "magnitude":
        im = ax.imshow(img, cmap="magma", vmin=0.0, vmax=float(np.percentile(inner, 99)) or 1.0)
        fig.colorbar(im, ax=ax, shrink=0.8)
    else:
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def _interior_argmax(values: FloatImage) -> tuple[int, int]:
    """Strongest response away from the padded border, so the example shows a real edge."""
    inner = np.abs(values[1:-1, 1:-1])
    r, c = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(r) + 1, int(c) + 1


def run_conv_demo(
    out_path: str | Path,
    image: str = "china.jpg",
    height: int = 128,
    padding: Padding = "same",
) -> ConvDemoResult:
    """Convolve a sample photo with every kernel both ways, plot it, and report the disagreement."""
    img = sample_image(image, height)
    naive = {name: conv2d_naive(img, k, padding) for name, k in KERNELS.items()}
    library = {name: conv2d_torch(img, k, padding) for name, k in KERNELS.items()}
    diffs = {name: float(np.max(np.abs(naive[name] - library[name]))) for name in KERNELS}
    magnitude = gradient_magnitude(naive["Sobel x"], naive["Sobel y"])
    row, col = _interior_argmax(naive["Sobel x"])
    if padding == "valid":  # valid output (i, j) is centred on image pixel (i + 1, j + 1)
        row, col = row + KERNELS["Sobel x"].shape[0] // 2, col + KERNELS["Sobel x"].shape[1] // 2
    example = worked_example(img, KERNELS["Sobel x"], row, col)

    fig = Figure(figsize=(16, 11), layout="constrained")
    grid = fig.add_gridspec(3, 4)
    ax = fig.add_subplot(grid[0, 0])
    _show(fig, ax, img, f"{image} grayscale {img.shape[0]}×{img.shape[1]}", "image")
    ax.add_patch(Rectangle((col - 1.5, row - 1.5), 3, 3, fill=False, edgecolor="red", lw=1.5))
    _show(fig, fig.add_subplot(grid[0, 1]), magnitude, "gradient magnitude √(Gx² + Gy²)", "magnitude")
    _draw_worked_example(fig.add_subplot(grid[0, 2:]), example, "Sobel x")
    for i, name in enumerate(KERNELS):
        r, c = divmod(i + 4, 4)
        mode = "signed" if abs(float(KERNELS[name].sum())) < 1e-9 else "image"  # zero-sum = edge detector
        title = f"{name} ({padding}, naive loop)\nmax |naive − F.conv2d| = {diffs[name]:.1e}"
        _show(fig, fig.add_subplot(grid[r, c]), naive[name], title, mode)
    _draw_kernels(fig.add_subplot(grid[2, 1:]))
    fig.suptitle("2-D convolution by hand vs torch.nn.functional.conv2d", fontsize=14)

    target = Path(out_path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=100)
    shape = (int(img.shape[0]), int(img.shape[1]))
    return ConvDemoResult(out_path=target, max_abs_diff=diffs, padding=padding, image_shape=shape, example=example)
