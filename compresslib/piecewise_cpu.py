"""The native CPU kernels of LMA and APLU (``piecewise_cpu.c``): built on first use, then called through ctypes.

In eager PyTorch a piecewise-linear layer is a dozen full passes over its input (index, gathers, multiply-add, then
in backward the gathers again and a histogram per parameter); the C kernels do the forward in one pass and the
backward in one pass, block by block in the L1 cache. Their outputs and input gradients equal the eager path's
bit for bit; the parameters' gradients differ in rounding only (float64 sums of short float32 partial sums, where
eager sums in float32).

The library is built with the C compiler ``$CC`` (default ``cc``; written for GCC, whose vector extensions Clang
shares, and tested with GCC 12) the first time a process needs it, into ``$COMPRESSLIB_KERNEL_DIR`` (default
``~/.cache/compresslib/kernels``), named by the hash of the source, the flags and the machine architecture, and
renamed into place atomically: concurrent jobs build it at most once each, and compute nodes without a compiler
load the one ``python -m compresslib.piecewise_cpu`` built on a login node into a shared folder. On x86-64 with GCC
it carries AVX-512, AVX2 and baseline versions of each function and the CPU picks its own. Without a compiler, or
when the build fails, the layers run the eager path and one warning says why. ``COMPRESSLIB_CPU_KERNELS=off``
chooses the eager path; :func:`kernel_state` (in every record's ``hardware``) says which ran.

The kernels are single-threaded: the split of the parameter sums, and so their rounding, never depends on the
number of threads.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

__all__ = ["KERNELS_VARIABLE", "KERNEL_DIR_VARIABLE", "usable", "kernel_state", "lma_forward", "hinge_forward",
           "backward"]

log = logging.getLogger(__name__)

KERNELS_VARIABLE = "COMPRESSLIB_CPU_KERNELS"  # "auto" (default) or "off"
KERNEL_DIR_VARIABLE = "COMPRESSLIB_KERNEL_DIR"
SOURCE = Path(__file__).with_suffix(".c")
FLAGS = ("-O3", "-std=gnu11", "-fPIC", "-shared", "-ffp-contract=fast", "-Wno-psabi")
MAX_SEGMENTS = 32  # a table row is two vectors of 16

_state = "not needed"  # what kernel_state reports: "not needed", "built", "off", or "unavailable: <cause>"


class _Layout(ctypes.Structure):
    """The C ``Layout``: the tensor as (outer, groups, inner), the rows to do, and the (groups, K) tables."""
    _fields_ = [("first", ctypes.c_int64), ("stop", ctypes.c_int64), ("groups", ctypes.c_int64),
                ("inner", ctypes.c_int64), ("segments", ctypes.c_int32), ("slope", ctypes.c_void_p),
                ("offset", ctypes.c_void_p)]


def kernel_state() -> str:
    """Whether this process ran LMA and APLU on the CPU kernels: ``"built"`` (it did), ``"not needed"``, ``"off"``
    (:data:`KERNELS_VARIABLE`), or ``"unavailable: <cause>"`` (the eager path ran)."""
    return _state


def usable(x: torch.Tensor, num_segments: int) -> bool:
    """Whether the kernels take this call: a contiguous float32 CPU tensor, at most 32 segments, outside
    ``torch.compile``, and the library built (on the first call)."""
    if (x.device.type != "cpu" or x.dtype != torch.float32 or x.numel() == 0 or not x.is_contiguous()
            or num_segments > MAX_SEGMENTS or torch.compiler.is_compiling()):
        return False
    return _library() is not None


@functools.cache
def _library() -> ctypes.CDLL | None:
    global _state
    if os.environ.get(KERNELS_VARIABLE, "auto").strip().lower() == "off":
        _state = "off"
        return None
    try:
        library = ctypes.CDLL(str(_built()))
    except (OSError, subprocess.SubprocessError) as error:
        _state = f"unavailable: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
        log.warning("LMA and APLU run eager on the CPU (slower): the CPU kernels are %s", _state)
        return None
    pointer, layout = ctypes.c_void_p, ctypes.POINTER(_Layout)
    library.lma_forward.argtypes = [layout, pointer, ctypes.c_float, ctypes.c_float, pointer, pointer]
    library.hinge_forward.argtypes = [layout, pointer, pointer, pointer, pointer]
    library.piecewise_backward.argtypes = [layout, pointer, pointer, pointer, pointer, pointer]
    for function in (library.lma_forward, library.hinge_forward, library.piecewise_backward):
        function.restype = None
    _state = "built"
    return library


def _built() -> Path:
    """The shared library for this source, flags and machine architecture, compiled first when it is not there yet
    (so a node without a compiler uses the one a login node built into a shared folder)."""
    key = hashlib.sha256("\0".join([SOURCE.read_text(), *FLAGS, platform.machine()]).encode()).hexdigest()[:16]
    folder = Path(os.environ.get(KERNEL_DIR_VARIABLE) or Path.home() / ".cache" / "compresslib" / "kernels")
    target = folder / f"piecewise_cpu-{key}.so"
    if target.exists():
        return target
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler {compiler!r} on PATH (set CC)")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as scratch:
        built = Path(scratch) / target.name
        done = subprocess.run([compiler, *FLAGS, "-o", str(built), str(SOURCE), "-lm"], capture_output=True,
                              text=True, timeout=300)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "error" in line] or done.stderr.splitlines()
            raise OSError(f"{compiler} failed to build {SOURCE.name}: {errors[0] if errors else done.returncode}")
        os.replace(built, target)
    log.info("built the CPU kernels of LMA and APLU: %s", target)
    return target


def _layout(x: torch.Tensor, slope: torch.Tensor, offset: torch.Tensor | None, channel_dim: int | None) -> _Layout:
    """``x`` (contiguous) as (outer, groups, inner): one group for LMA, the channels along ``channel_dim`` for APLU;
    the (groups, K) tables come from :func:`_table` and must outlive the call; the backward, which reads only the
    slopes, passes no offset table."""
    shape = x.shape if x.dim() else (1,)
    if channel_dim is None:
        outer, groups, inner = shape[0], 1, x.numel() // shape[0]
    else:
        outer, groups = int(torch.Size(shape[:channel_dim]).numel()), shape[channel_dim]
        inner = int(torch.Size(shape[channel_dim + 1:]).numel())
    return _Layout(0, outer, groups, inner, slope.shape[-1], slope.data_ptr(),
                   offset.data_ptr() if offset is not None else None)


def _table(values: torch.Tensor) -> torch.Tensor:
    """A parameter table as the kernels read it: float32, contiguous, out of autograd."""
    return values.detach().float().contiguous()


def lma_forward(x: torch.Tensor, slope: torch.Tensor, offset: torch.Tensor, lower: float,
                width: float) -> tuple[torch.Tensor, torch.Tensor]:
    """LMA's output and uint8 segment indices for a contiguous ``x`` and (1, K) tables (see ``uniform_bins``)."""
    slope, offset = _table(slope), _table(offset)
    out, segments = torch.empty_like(x), torch.empty(x.shape, dtype=torch.uint8)
    _library().lma_forward(_layout(x, slope, offset, None), x.data_ptr(), lower, width, out.data_ptr(),
                           segments.data_ptr())
    return out, segments


def hinge_forward(x: torch.Tensor, slope: torch.Tensor, offset: torch.Tensor, b: torch.Tensor,
                  channel_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """APLU's output and uint8 segment indices for a contiguous ``x``, (C, K) tables and (C, S) hinges."""
    slope, offset = _table(slope), _table(offset)
    hinges_by_row = b.detach().float().t().contiguous()  # (S, C): a hinge's positions over the channels in a row
    out, segments = torch.empty_like(x), torch.empty(x.shape, dtype=torch.uint8)
    _library().hinge_forward(_layout(x, slope, offset, channel_dim), x.data_ptr(), hinges_by_row.data_ptr(),
                             out.data_ptr(), segments.data_ptr())
    return out, segments


def backward(grad: torch.Tensor, x: torch.Tensor, segments: torch.Tensor, slope: torch.Tensor,
             channel_dim: int | None, need_x: bool, need_sums: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The input gradient (when ``need_x``) and the (2, G * K) float64 per-slot sums of ``grad * x`` and ``grad``
    (when ``need_sums``) for the forward that gave ``segments``."""
    slope = _table(slope)
    grad = grad.to(torch.float32).contiguous()
    grad_x = torch.empty_like(x) if need_x else None
    sums = torch.zeros(2, slope.numel(), dtype=torch.float64) if need_sums else None
    _library().piecewise_backward(_layout(x, slope, None, channel_dim), grad.data_ptr(), x.data_ptr(),
                                  segments.data_ptr(), grad_x.data_ptr() if need_x else None,
                                  sums.data_ptr() if need_sums else None)
    return grad_x, sums


def main() -> None:
    """``python -m compresslib.piecewise_cpu``: build the kernels now (say, on a login node) and say where."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if _library() is None:
        raise SystemExit(f"compresslib.piecewise_cpu: the CPU kernels are {_state}")
    print(f"compresslib.piecewise_cpu: the CPU kernels are built: {_built()}")


if __name__ == "__main__":
    main()
