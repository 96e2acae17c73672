"""Speed of the activation layers: one training step's forward and backward, as a multiple of ReLU's.

    python -m compresslib.bench.activations [--threads 1] [--rounds 20] [--shape 64,75,32,32] [--dtype float32]
        [--device cpu] [--channels-last]

Each measurement times ``act(x).sum().backward()`` in training mode on a fresh leaf ``x`` that requires grad
(built outside the timed span), for ReLU, PReLU, Swish, APLU-8 and LMA-8. On the CPU, LMA and APLU run on the C
kernels (``compresslib.piecewise_cpu``) unless ``COMPRESSLIB_CPU_KERNELS=off``; the header says which. The layers
take turns within each round, so a load that comes and goes on the machine hits them alike, and each layer's best
round is reported.
docs/benchmarks.md ("Activation layers") records the figures.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from compresslib import piecewise_cpu
from compresslib.activations import create_activation

__all__ = ["TAGS", "time_layers", "format_times", "main"]

TAGS = ("relu", "prelu", "swish", "aplu8", "lma8")


def _one_step(layer: nn.Module, base: torch.Tensor, device: torch.device) -> Callable[[], float]:
    """A function that runs one forward and backward of ``layer`` and returns its seconds."""

    def step() -> float:
        x = base.detach().clone().requires_grad_()
        layer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        layer(x).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    return step


def time_layers(shape: tuple[int, ...], dtype: torch.dtype, rounds: int, device: torch.device | str = "cpu",
                channels_last: bool = False, tags: tuple[str, ...] = TAGS) -> dict[str, float]:
    """Best seconds of ``act(x).sum().backward()`` per tag over ``rounds`` interleaved rounds (one warm-up first)."""
    device = torch.device(device)
    base = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    if channels_last:
        base = base.contiguous(memory_format=torch.channels_last)
    steps = {tag: _one_step(create_activation(tag, shape[1]).to(device, dtype).train(), base, device) for tag in tags}
    best = {tag: step() for tag, step in steps.items()} | {tag: float("inf") for tag in tags}  # warm-up round
    for _ in range(rounds):
        for tag, step in steps.items():
            best[tag] = min(best[tag], step())
    return best


def format_times(best: dict[str, float], baseline: str = "relu") -> str:
    """One line per layer: its best milliseconds and its multiple of ``baseline``'s."""
    lines = [f"{'layer':8s} {'ms':>8s} {'x ' + baseline:>8s}"]
    for tag, seconds in best.items():
        lines.append(f"{tag:8s} {seconds * 1e3:8.2f} {seconds / best[baseline]:8.2f}")
    return "\n".join(lines)


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(size) for size in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of sizes") from None
    if len(shape) < 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need (N, C, ...) with every size >= 1")
    return shape


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m compresslib.bench.activations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds; each layer's best counts (default: 20)")
    parser.add_argument("--shape", type=_shape, default=(64, 75, 32, 32), help="input shape (default: 64,75,32,32)")
    parser.add_argument("--dtype", choices=("float32", "float64", "bfloat16"), default="float32")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--channels-last", action="store_true", help="4-D input in channels_last memory format")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    best = time_layers(args.shape, getattr(torch, args.dtype), args.rounds, args.device, args.channels_last)
    layout = ", channels_last" if args.channels_last else ""
    print(f"act(x).sum().backward(), x {args.dtype} {tuple(args.shape)}{layout} on {args.device}, "
          f"{args.threads} thread(s), torch {torch.__version__}, best of {args.rounds} rounds, "
          f"CPU kernels {piecewise_cpu.kernel_state()}")
    print(format_times(best))


if __name__ == "__main__":
    main()
