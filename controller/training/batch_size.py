"""``--batch-size auto``: the largest batch that fits the training device.

On CUDA (a Jetson's shared memory included) we try real forward/backward
passes and back off on out-of-memory. CPUs don't raise OOM, the OS kills the
process instead, so there we measure activation memory per sample and fit
it into a share of the memory available.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

CPU_MEMORY_SHARE = 0.25  # leave room for the dataset, the OS and the rest of the run
FALLBACK_AVAILABLE = 2 * 1024**3  # when /proc/meminfo is unreadable (macOS)


def find_max_batch_size(fits: Callable[[int], bool], start: int = 2, limit: int = 512) -> int:
    """Largest ``b`` in [1, limit] with ``fits(b)``: double until failure, then bisect.

    Assumes monotonicity (if ``b`` fits, every smaller one does). Returns 1
    even if nothing fits, so the caller fails with the real error.
    """
    good, bad = 0, None
    b = max(1, min(start, limit))
    while b <= limit:
        if fits(b):
            good = b
            if b == limit:
                return b
            b = min(b * 2, limit)
        else:
            bad = b
            break
    if bad is None:
        return max(good, 1)
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return max(good, 1)


def _available_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return FALLBACK_AVAILABLE


def activation_bytes_per_sample(model: nn.Module, sample_shape: tuple[int, ...]) -> int:
    """Bytes of every leaf module's output for one sample, ×3 for gradients and optimizer scratch."""
    total = 0

    def hook(_m: nn.Module, _i: object, out: object) -> None:
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel() * out.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((2, *sample_shape)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return max(1, 3 * total // 2)


def _cuda_fits(model: nn.Module, sample_shape: tuple[int, ...], device: torch.device) -> Callable[[int], bool]:
    def fits(b: int) -> bool:
        try:
            x = torch.randn((b, *sample_shape), device=device)
            model(x).float().sum().backward()
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()

    return fits


def auto_batch_size(model: nn.Module, sample_shape: tuple[int, ...], device: torch.device, limit: int) -> int:
    """Pick the batch size for ``--batch-size auto``, capped at ``limit`` (e.g. the train-set size)."""
    if device.type == "cuda":
        model.to(device).train()
        return find_max_batch_size(_cuda_fits(model, sample_shape, device), limit=limit)
    per_sample = activation_bytes_per_sample(model, sample_shape)
    budget = _available_memory() * CPU_MEMORY_SHARE
    return find_max_batch_size(lambda b: b * per_sample <= budget, limit=limit)
