"""Classification jobs on a real agent: test sets, folders with bad files, inline images, timing."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
from agents import DigitsModel, StartAgent
from PIL import Image

from jetfleet.controller.fleet.agent_client import AgentCallError


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _digits_folder(root: Path, test_set: Path, n: int = 60) -> tuple[Path, np.ndarray, np.ndarray]:
    data = np.load(test_set)
    images, labels = data["images"][:n], data["labels"][:n]
    for i, (img, label) in enumerate(zip(images, labels)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0]).save(folder / f"{i:03d}.png")
    return root, images, labels


@pytest.fixture
def serving(start_agent: StartAgent, digits_model: DigitsModel):
    ra = start_agent()
    d = digits_model.fp32
    assert ra.client.push(d.spec, d.files).ok
    return ra, d


def test_folder_job_reports_bad_files_and_classifies_the_rest(serving, tmp_path: Path) -> None:
    ra, d = serving
    folder, images, labels = _digits_folder(tmp_path / "imgs", d.files[d.spec.test_set.sha256])
    good = _png(images[0][0])
    (folder / "3" / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "4" / "random.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "5" / "notes.png").write_text("not an image")
    Image.new("1", (30_000, 30_000)).save(folder / "6" / "bomb.png")  # 900 Mpx, a few KB on disk
    Image.fromarray(np.stack([images[1][0]] * 4, axis=-1), "RGBA").save(folder / "7" / "rgba.png")
    result = ra.client.run_job(folder=str(folder), batch_size=16, return_predictions=True)
    bad = {e.item: e.reason for e in result.errors}
    assert set(bad) == {"3/truncated.png", "4/random.jpg", "5/notes.png", "6/bomb.png"}
    assert "pixel" in bad["6/bomb.png"]
    assert result.items == len(labels) + 1  # the RGBA image is converted, not refused
    preds = {p.item: p for p in result.predictions}
    assert len(preds) == result.items and all(0 <= p.score <= 1 for p in preds.values())
    # The same pixels through the test-set path and the PNG path give the same answers.
    reference = ra.client.run_job(test_set=d.spec.test_set, limit=len(labels), return_predictions=True)
    for i, p in enumerate(reference.predictions):
        assert preds[f"{labels[i]}/{i:03d}.png"].label == p.label


def test_inline_images_with_labels(serving) -> None:
    ra, d = serving
    data = np.load(d.files[d.spec.test_set.sha256])
    items = [(f"img{i}.png", _png(data["images"][i][0]), int(data["labels"][i])) for i in range(20)]
    items.append(("garbage.png", b"\x89PNG\r\n\x1a\n garbage", 0))
    result = ra.client.run_job(images=items, batch_size=8)
    assert result.items == 20 and [e.item for e in result.errors] == ["garbage.png"]
    assert result.has_labels and result.top1 >= 0.85


def test_timing_loop_runs_the_requested_iterations(serving) -> None:
    ra, d = serving
    result = ra.client.run_job(test_set=d.spec.test_set, batch_size=8, warmup=3, iterations=40)
    assert result.latency.count == 40 and result.iterations == 40 and result.warmup == 3
    assert result.items == 359  # accuracy still covers the whole set
    assert result.throughput == pytest.approx(40 * 8 / result.wall_s, rel=1e-6)
    assert result.compute is None  # ONNX Runtime on CPU cannot separate transfers from compute
    assert result.telemetry and result.telemetry[-1].timestamp >= result.started_at - 1.0  # the sampling interval


def test_job_errors_name_the_problem(start_agent: StartAgent, serving) -> None:
    ra, d = serving
    with pytest.raises(AgentCallError) as unknown:
        ra.client.run_job(model="resnet50", test_set=d.spec.test_set)
    assert unknown.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(AgentCallError) as missing:
        ra.client.run_job(folder="/nonexistent/images")
    assert missing.value.code == grpc.StatusCode.NOT_FOUND and "/nonexistent/images" in missing.value.details
    empty = start_agent("jetson-02")
    with pytest.raises(AgentCallError, match="serves no model yet"):
        empty.client.run_job(test_set=d.spec.test_set)


def test_jobs_never_see_a_half_activated_model(serving, digits_model: DigitsModel) -> None:
    ra, fp32 = serving
    int8 = digits_model.int8
    ra.client.upload(int8.files[int8.spec.onnx.sha256], int8.spec.onnx, manifest=ra.client.sign(int8.spec, "up"))
    seen, failures, stop = [], [], threading.Event()

    def jobs() -> None:
        while not stop.is_set():
            try:
                r = ra.client.run_job(test_set=fp32.spec.test_set, batch_size=64, warmup=0)
                seen.append((r.model.spec, r.top1))
            except Exception as exc:  # asserted empty below
                failures.append(exc)

    worker = threading.Thread(target=jobs)
    worker.start()
    try:
        for _ in range(2):
            assert ra.client.deploy(int8.spec).ok
            assert ra.client.deploy(fp32.spec).ok
    finally:
        stop.set()
        worker.join()
    assert not failures and seen
    for spec, top1 in seen:
        assert spec in (fp32.spec, int8.spec)
        assert abs(top1 - spec.reference_accuracy) <= 0.005
