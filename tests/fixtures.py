"""Builders for tiny datasets in exactly the on-disk formats real users have."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def class_images(n: int, num_classes: int, size: int, channels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, C, H, W) images whose brightness pattern depends on the class, so they are learnable."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.empty((n, channels, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        stripes = ((xx + yy * (label % 3)) // max(1, size // (2 + label))) % 2
        base = 40 + 180 * stripes + rng.normal(0, 20, (size, size))
        for c in range(channels):
            images[i, c] = np.clip(base + 15 * c * (label % 2), 0, 255)
    return images, labels.astype(np.int64)


def write_cifar10(root: Path, per_batch: int = 20, test: int = 30) -> Path:
    """A miniature ``cifar-10-batches-py`` folder written the way the real one is (pickled dicts, bytes keys)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    meta = {b"label_names": [n.encode() for n in CIFAR_LABELS], b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        n = test if name == "test_batch" else per_batch
        images, labels = class_images(n, 10, 32, 3, seed)
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels.tolist(),
            b"data": images.reshape(n, 3072),
            b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def write_image_folder(
    root: Path, classes: tuple[str, ...] = ("cat", "dog", "fox"), per_class: int = 12, size: int = 20, seed: int = 0
) -> Path:
    """``root/<class>/<n>.png`` RGB images of varying sizes (the loader must resize them)."""
    images, labels = class_images(per_class * len(classes), len(classes), size, 3, seed)
    for i, (img, label) in enumerate(zip(images, labels)):  # one label per image; zip(strict=) is 3.10+
        folder = root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray(img.transpose(1, 2, 0))
        if i % 3 == 0:
            pil = pil.resize((size + 7, size))  # not square: exercises resize + centre crop
        pil.save(folder / f"{i}.png")
    return root


def pg_url_or_skip() -> str:
    """The test PostgreSQL URL (see scripts/test-postgres.sh), emptied; skip or fail without one."""
    import os

    import pytest

    url = os.environ.get("JETFLEET_TEST_PG_URL")
    if not url:
        if os.environ.get("JETFLEET_REQUIRE_PG") == "1":
            pytest.fail("JETFLEET_REQUIRE_PG=1 but JETFLEET_TEST_PG_URL is not set")
        pytest.skip("PostgreSQL not configured: run scripts/test-postgres.sh and set JETFLEET_TEST_PG_URL")
    from jetfleet.controller.registry.db import downgrade, make_engine, migrate

    engine = make_engine(url)
    migrate(engine)  # so that downgrade has something to drop, whatever an earlier test left
    downgrade(engine, "base")
    engine.dispose()
    return url


def tiny_onnx_classifier(path: Path, classes: int = 3, channels: int = 1, size: int = 8) -> Path:
    """Flatten → Gemm: a real, checkable ONNX classifier written with onnx.helper (no torch export)."""
    import onnx
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((channels * size * size, classes), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("Gemm", ["flat", "W"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", channels, size, size])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", classes])],
        [weight],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path
