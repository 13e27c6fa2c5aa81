"""The few CUDA runtime calls the TensorRT backend needs, over ctypes.

Why not pycuda, cuda-python or torch: a Jetson has JetPack's libcudart and
TensorRT, and every extra binding is one more wheel to build for aarch64 and
keep in step with JetPack (DESIGN.md: the agent never imports torch). The
TensorRT Python API takes device pointers and stream handles as plain
integers (``set_tensor_address(name, int)``, ``execute_async_v3(int)``), so
a dozen ``cudart`` functions are all the agent needs: device count and free
memory, device and pinned host buffers, async copies, a stream, and events
to split a batch's time into host→device, compute and device→host.

Nothing is loaded at import time: ``load()`` finds libcudart on first use,
so the agent imports (and runs the ONNX Runtime backend) on machines without
CUDA. Every call checks its ``cudaError_t`` and raises :class:`CudaError`
with ``cudaGetErrorString``'s text.

Which libcudart: one already mapped into the process wins (TensorRT's pip
wheels load ``libcudart.so.12`` from site-packages; using the same copy keeps
one runtime per process), then ``$JETFLEET_CUDART``, then the usual sonames
(JetPack 5 ships CUDA 11.4: ``libcudart.so.11.0``; JetPack 6: CUDA 12),
then ``/usr/local/cuda/lib64``. Several runtimes in one process still share
the driver's primary context, so pointers and streams stay interchangeable.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterable
from pathlib import Path

ENV_VAR = "JETFLEET_CUDART"  # full path of a libcudart to use, for unusual installs
SONAMES = ("libcudart.so", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so.13")
SEARCH_DIRS = ("/usr/local/cuda/lib64", "/usr/local/cuda/targets/aarch64-linux/lib")

# enum cudaMemcpyKind (cuda_runtime_api.h)
_HOST_TO_DEVICE = 1
_DEVICE_TO_HOST = 2
_HOST_ALLOC_DEFAULT = 0  # cudaHostAllocDefault: page-locked, not mapped

_c_int_p = ctypes.POINTER(ctypes.c_int)
_c_size_t_p = ctypes.POINTER(ctypes.c_size_t)
_c_void_pp = ctypes.POINTER(ctypes.c_void_p)


class CudaError(RuntimeError):
    """A CUDA runtime call returned an error; ``str()`` carries ``cudaGetErrorString``'s text."""

    def __init__(self, call: str, code: int, message: str) -> None:
        super().__init__(f"{call} failed: {message} (cudaError_t {code})")
        self.call = call
        self.code = code
        self.message = message


class CudaUnavailable(RuntimeError):
    """No libcudart could be loaded on this machine."""


# (name, restype, argtypes): declaring every signature keeps 64-bit pointers from being truncated to int.
_SIGNATURES: tuple[tuple[str, type, tuple[type, ...]], ...] = (
    ("cudaGetErrorString", ctypes.c_char_p, (ctypes.c_int,)),
    ("cudaGetErrorName", ctypes.c_char_p, (ctypes.c_int,)),
    ("cudaRuntimeGetVersion", ctypes.c_int, (_c_int_p,)),
    ("cudaDriverGetVersion", ctypes.c_int, (_c_int_p,)),
    ("cudaGetDeviceCount", ctypes.c_int, (_c_int_p,)),
    ("cudaMemGetInfo", ctypes.c_int, (_c_size_t_p, _c_size_t_p)),
    ("cudaMalloc", ctypes.c_int, (_c_void_pp, ctypes.c_size_t)),
    ("cudaFree", ctypes.c_int, (ctypes.c_void_p,)),
    ("cudaHostAlloc", ctypes.c_int, (_c_void_pp, ctypes.c_size_t, ctypes.c_uint)),
    ("cudaFreeHost", ctypes.c_int, (ctypes.c_void_p,)),
    (
        "cudaMemcpyAsync",
        ctypes.c_int,
        (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p),
    ),
    ("cudaStreamCreate", ctypes.c_int, (_c_void_pp,)),
    ("cudaStreamSynchronize", ctypes.c_int, (ctypes.c_void_p,)),
    ("cudaStreamDestroy", ctypes.c_int, (ctypes.c_void_p,)),
    ("cudaEventCreate", ctypes.c_int, (_c_void_pp,)),
    ("cudaEventRecord", ctypes.c_int, (ctypes.c_void_p, ctypes.c_void_p)),
    ("cudaEventElapsedTime", ctypes.c_int, (ctypes.POINTER(ctypes.c_float), ctypes.c_void_p, ctypes.c_void_p)),
    ("cudaEventDestroy", ctypes.c_int, (ctypes.c_void_p,)),
)


class CudaRuntime:
    """One loaded libcudart; methods take and return pointers and handles as ``int``."""

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.path = path
        self._lib = lib
        for name, restype, argtypes in _SIGNATURES:
            fn = getattr(lib, name)  # AttributeError: not a CUDA runtime, load() tries the next candidate
            fn.restype = restype
            fn.argtypes = list(argtypes)

    def error_string(self, code: int) -> str:
        text = self._lib.cudaGetErrorString(code)
        return text.decode(errors="replace") if text else f"unknown CUDA error {code}"

    def _check(self, call: str, code: int) -> None:
        if code != 0:
            raise CudaError(call, code, self.error_string(code))

    def _out_int(self, call: str) -> int:
        value = ctypes.c_int()
        self._check(call, getattr(self._lib, call)(ctypes.byref(value)))
        return value.value

    def _out_pointer(self, call: str, *args: int) -> int:
        ptr = ctypes.c_void_p()
        self._check(call, getattr(self._lib, call)(ctypes.byref(ptr), *args))
        return ptr.value or 0

    def runtime_version(self) -> int:
        """``cudaRuntimeGetVersion``: 1000 × major + 10 × minor (11040 is CUDA 11.4)."""
        return self._out_int("cudaRuntimeGetVersion")

    def driver_version(self) -> int:
        return self._out_int("cudaDriverGetVersion")

    def device_count(self) -> int:
        """Visible CUDA devices; raises (no driver, no device) rather than returning 0, with CUDA's reason."""
        return self._out_int("cudaGetDeviceCount")

    def mem_get_info(self) -> tuple[int, int]:
        """(free, total) bytes of the current device; on a Jetson that is the RAM the GPU shares with the CPU."""
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self._check("cudaMemGetInfo", self._lib.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total)))
        return free.value, total.value

    def malloc(self, nbytes: int) -> int:
        return self._out_pointer("cudaMalloc", nbytes)

    def free(self, ptr: int) -> None:
        self._check("cudaFree", self._lib.cudaFree(ptr))

    def host_alloc(self, nbytes: int) -> int:
        """Page-locked host memory: async copies from it overlap and run at full bandwidth."""
        return self._out_pointer("cudaHostAlloc", nbytes, _HOST_ALLOC_DEFAULT)

    def free_host(self, ptr: int) -> None:
        self._check("cudaFreeHost", self._lib.cudaFreeHost(ptr))

    def memcpy_htod_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        self._check("cudaMemcpyAsync", self._lib.cudaMemcpyAsync(dst, src, nbytes, _HOST_TO_DEVICE, stream))

    def memcpy_dtoh_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        self._check("cudaMemcpyAsync", self._lib.cudaMemcpyAsync(dst, src, nbytes, _DEVICE_TO_HOST, stream))

    def stream_create(self) -> int:
        return self._out_pointer("cudaStreamCreate")

    def stream_synchronize(self, stream: int) -> None:
        self._check("cudaStreamSynchronize", self._lib.cudaStreamSynchronize(stream))

    def stream_destroy(self, stream: int) -> None:
        self._check("cudaStreamDestroy", self._lib.cudaStreamDestroy(stream))

    def event_create(self) -> int:
        return self._out_pointer("cudaEventCreate")

    def event_record(self, event: int, stream: int) -> None:
        self._check("cudaEventRecord", self._lib.cudaEventRecord(event, stream))

    def event_elapsed_ms(self, start: int, end: int) -> float:
        """Milliseconds between two recorded, completed events (about 0.5 µs resolution)."""
        ms = ctypes.c_float()
        self._check("cudaEventElapsedTime", self._lib.cudaEventElapsedTime(ctypes.byref(ms), start, end))
        return float(ms.value)

    def event_destroy(self, event: int) -> None:
        self._check("cudaEventDestroy", self._lib.cudaEventDestroy(event))


def _mapped_cudarts(maps: Path = Path("/proc/self/maps")) -> list[str]:
    """Paths of libcudart copies already mapped into this process (Linux), in first-seen order."""
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return []
    found: list[str] = []
    for line in lines:
        parts = line.split(maxsplit=5)  # address perms offset dev inode [pathname]
        path = parts[5] if len(parts) == 6 else ""
        if Path(path).name.startswith("libcudart") and ".so" in path and path not in found:
            found.append(path)
    return found


def candidates() -> list[str]:
    """Where ``load()`` looks for libcudart, in order (see the module docstring for why)."""
    names = [*_mapped_cudarts()]
    if os.environ.get(ENV_VAR):
        names.append(os.environ[ENV_VAR])
    names += SONAMES
    for folder in SEARCH_DIRS:
        names += sorted(str(p) for p in Path(folder).glob("libcudart.so*"))
    return list(dict.fromkeys(names))


_lock = threading.Lock()
_runtime: CudaRuntime | None = None


def _open(names: Iterable[str]) -> CudaRuntime:
    errors = []
    for name in names:
        try:
            return CudaRuntime(ctypes.CDLL(name), name)
        except (OSError, AttributeError) as exc:
            errors.append(str(exc) if name in str(exc) else f"{name}: {exc}")
    raise CudaUnavailable("libcudart could not be loaded; tried " + "; ".join(errors))


def load(names: Iterable[str] | None = None) -> CudaRuntime:
    """The process's CUDA runtime, loaded once; ``names`` overrides the search (tests, odd installs)."""
    global _runtime
    if names is not None:
        return _open(names)
    with _lock:
        if _runtime is None:
            _runtime = _open(candidates())
        return _runtime


def cuda_available(names: Iterable[str] | None = None) -> tuple[bool, str]:
    """(True, what was found) or (False, why not); never raises."""
    try:
        rt = load(names)
        count = rt.device_count()
        version = rt.runtime_version()
    except (CudaUnavailable, CudaError) as exc:
        return False, str(exc)
    except Exception as exc:  # a broken install must not stop the agent from starting
        return False, f"CUDA probe failed: {type(exc).__name__}: {exc}"
    if count < 1:
        return False, f"no CUDA device visible ({rt.path})"
    return True, f"{count} CUDA device(s), runtime {version // 1000}.{version % 1000 // 10} ({rt.path})"
