"""Scenario 8: a job whose inputs are corrupt, truncated, decompression bombs or random bytes.

The agent runs as its own process (``jetfleet-agent serve``, enrolled:
mutual TLS, signed manifests) serving the digits FP32 model, and receives one inline-image job: 20 good digits mixed
with hostile items. Expected outcome:

- every bad item comes back as an ``ItemError`` naming it, with a reason
  that says what is wrong (bomb, truncated, empty, not an image...);
- every good item is classified, with the same answers as in a job without
  the bad items, and the agent still serves afterwards; so is a PNG whose
  honest 8×8 header sits on an IDAT stream that would inflate to 64 MiB
  (decoded at its declared size, the excess never inflated);
- the agent's peak resident memory (the kernel's exact high-water mark)
  during three such jobs rises less than 64 MiB above where it started.
  Decoding the 30000×30000 bomb alone would take 900 MB (Pillow keeps a
  1-bit image at one byte per pixel), and decoding even the 7072×7072 image
  just past the 50 Mpx limit costs ~100 MiB (measured with the limit check
  removed); the hostile job as it is costs ~7 MiB.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
from agents import DigitsModel
from faults.harness import Invariants, MiB, PeakRss
from faults.procs_agent import AgentProc, agent_processes
from PIL import Image

MEMORY_BOUND = 64 * MiB  # ~9× the ~7 MiB the job costs; below one decode of even the just-over-limit image
BOMB_SIDE = 30_000  # 900 Mpx: 18× the agent's 50 Mpx limit, 5× Pillow's own bomb error threshold
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _deflate(parts: Iterable[bytes]) -> bytes:
    """zlib-compress a stream of pieces without ever holding the whole (inflated) thing."""
    z = zlib.compressobj(9)
    return b"".join(z.compress(p) for p in parts) + z.flush()


def _gray_png(width: int, height: int, bit_depth: int, rows: Iterable[bytes], extra: bytes = b"") -> bytes:
    """A PNG built chunk by chunk, so headers and payloads can lie independently."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)  # colour type 0: grayscale
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", _deflate(rows)) + _chunk(b"IEND", b"")


def _repeat(block: bytes, times: int) -> Iterator[bytes]:
    for _ in range(times):
        yield block


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def hostile_items(good_png: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, a word the item's error reason must contain)."""
    header_only = PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0)) + _chunk(b"IEND", b"")
    broken_stream = bytearray(good_png)
    broken_stream[good_png.index(b"IDAT") + 8] ^= 0xFF  # first byte of the zlib stream: not a valid header
    huge_gif = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0) + b",\0\0\0\0\xff\xff\xff\xff\0\x02\x02L\x01\0;"
    text_bomb = _chunk(b"zTXt", b"Comment\0\0" + _deflate(_repeat(b"A" * MiB, 256)))  # 256 MiB of metadata
    return {
        "truncated.png": (good_png[: len(good_png) // 2], "truncated"),
        "random.bin": (random.Random(8).randbytes(5000), "not an image"),
        "empty.png": (b"", "empty"),
        "notes.png": (b"these are not the pixels you are looking for", "not an image"),
        "header-only.png": (header_only, "corrupt"),
        "broken-stream.png": (bytes(broken_stream), "corrupt"),
        # ~110 KB that claims 30000×30000: refused from the header, never allocated.
        "bomb-900mpx.png": (_gray_png(BOMB_SIDE, BOMB_SIDE, 1, _repeat(bytes(1 + BOMB_SIDE // 8), BOMB_SIDE)), "pixel"),
        "bomb-just-over-limit.png": (_gray_png(7072, 7072, 8, _repeat(bytes(7073), 7072)), "pixel"),
        "bomb-65535px.gif": (huge_gif, "pixel"),
        "bomb-text-chunk.png": (_gray_png(8, 8, 8, _repeat(bytes(9), 8), extra=text_bomb), "too large"),
    }


def idat_bomb() -> bytes:
    """An honest 8×8 header over an IDAT that would inflate to 64 MiB: decoded to 8×8, the excess never inflated."""
    return _gray_png(8, 8, 8, _repeat(bytes(MiB), 64))


def test_hostile_job_inputs_fail_per_item_and_memory_stays_bounded(
    digits_model: DigitsModel, invariants: Invariants, tmp_path: Path
) -> None:
    with agent_processes(tmp_path, invariants.record) as procs:
        _hostile_job(procs.start("jetson-01"), digits_model, invariants)


def _hostile_job(agent: AgentProc, digits_model: DigitsModel, inv: Invariants) -> None:
    d = digits_model.fp32
    pushed = agent.client.push(d.spec, d.files)
    assert pushed.ok, pushed.details
    inv.record("deployed", spec=d.spec.ref, pid=agent.pid)

    data = np.load(d.files[d.spec.test_set.sha256])
    good = [(f"good-{i:02d}.png", _png(data["images"][i][0]), int(data["labels"][i])) for i in range(20)]
    bad = hostile_items(good[0][1])
    items: list[tuple[str, bytes, int | None]] = [*good, *((n, b, None) for n, (b, _) in bad.items())]
    items.append(("bomb-idat.png", idat_bomb(), None))
    random.Random(0).shuffle(items)  # bad items land mid-batch, not in a tidy tail
    inv.record("job items", good=len(good), bad=sorted(bad), request_bytes=sum(len(b) for _, b, _ in items))

    clean = agent.client.run_job(images=good, batch_size=8, return_predictions=True)  # also warms the engine
    expected = {p.item: p.label for p in clean.predictions}
    inv.expect("the clean job classifies all 20", clean.items == 20 and not clean.errors, clean.errors)

    with PeakRss(agent.pid) as rss:
        results = [agent.client.run_job(images=items, batch_size=8, return_predictions=True) for _ in range(3)]
    inv.record("memory", before_mib=rss.before / MiB, peak_mib=rss.peak / MiB, exact=rss.exact)

    for n, result in enumerate(results):
        errors = {e.item: e.reason for e in result.errors}
        inv.expect(f"job {n}: exactly the bad items failed", set(errors) == set(bad), sorted(errors))
        for name, (_, word) in bad.items():
            reason = errors.get(name, "")
            inv.expect(f"job {n}: {name} says why", word in reason.lower(), reason)
        predicted = {p.item: p.label for p in result.predictions}
        inv.expect(f"job {n}: good items + the IDAT bomb classified", result.items == 21, result.items)
        inv.expect(
            f"job {n}: the good items' answers are those of the clean job",
            {k: predicted.get(k) for k in expected} == expected,
            predicted,
        )
        inv.expect(f"job {n}: the IDAT bomb decoded at its declared size", "bomb-idat.png" in predicted, predicted)
        inv.expect(f"job {n}: top-1 over the labelled items unchanged", result.top1 == clean.top1, result.top1)

    inv.expect(
        f"peak memory rose less than {MEMORY_BOUND // MiB} MiB",
        rss.growth < MEMORY_BOUND,
        f"{rss.growth / MiB:.1f} MiB ({'exact VmHWM' if rss.exact else 'sampled'})",
    )
    inv.expect("a naive decode of the bomb would break the bound", BOMB_SIDE * BOMB_SIDE > 10 * MEMORY_BOUND)
    after = agent.client.run_job(images=good, batch_size=8, return_predictions=True)
    inv.expect(
        "the agent still serves",
        agent.returncode is None and {p.item: p.label for p in after.predictions} == expected,
    )
    inv.check()


def test_the_bomb_really_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Positive control: Pillow reads 900 Mpx from those ~110 KB, so the agent's refusal is what saved it."""
    bomb = _gray_png(BOMB_SIDE, BOMB_SIDE, 1, _repeat(bytes(1 + BOMB_SIDE // 8), BOMB_SIDE))
    assert len(bomb) < 200_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own guard off: read the header only
    with Image.open(io.BytesIO(bomb)) as img:
        assert img.size == (BOMB_SIDE, BOMB_SIDE) and img.mode == "1"  # one byte per pixel once loaded
