"""Command line of the benchmarks (docs/benchmarks.md):

    python -m compresslib.bench speed [--device auto|cpu|cuda] [--pairs demo,conv,wrn] [--tasks teacher,ce,kd,inference]
        [--images N] [--steps N] [--warmup N] [--workers N] [--compile auto|on|off] [--out result.json]
    python -m compresslib.bench accuracy [--pair demo] [--epochs N] [--seeds 1,2,3] [--images N] [--test-images N]
        [--device ...] [--workers N] [--compile ...] [--out result.json]

Sizes left out take the device's defaults (small on the CPU, CIFAR-sized on CUDA). The report goes to stdout,
every figure with the device, versions and settings to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from compresslib.bench import accuracy, speed
from compresslib.bench.pairs import PAIRS
from compresslib.cli import run_main
from compresslib.devices import place
from compresslib.io import write_json

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _device(text: str) -> str:
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, cpu, cuda or cuda:N")
    return text


def _names(known: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list of names from ``known`` (duplicates dropped, order kept)."""
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"{', '.join(unknown) or 'nothing'} given; choose from {', '.join(known)}")
        return names
    return parse


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(seed) for seed in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None


def _defaults(sizes: dict[str, dict], key: str) -> str:
    """Help text naming a size's default per device type."""
    value = {device: sizes[device][key] for device in ("cpu", "cuda")}
    value = {device: ",".join(map(str, v)) if isinstance(v, tuple) else v for device, v in value.items()}
    return f"default: {value['cpu']} on the CPU, {value['cuda']} on CUDA"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m compresslib.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    sizes = speed.SIZE_DEFAULTS
    speed_parser = commands.add_parser("speed", help="images/s and peak memory of the reference and compresslib paths")
    speed_parser.add_argument("--pairs", type=_names(tuple(PAIRS)),
                              help=f"teacher/student pairs ({_defaults(sizes, 'pairs')})")
    speed_parser.add_argument("--tasks", type=_names(speed.TASKS), default=speed.TASKS,
                              help=f"what to measure (default: {','.join(speed.TASKS)})")
    speed_parser.add_argument("--images", type=_at_least(1), help=f"random images held in memory "
                              f"({_defaults(sizes, 'images')})")
    speed_parser.add_argument("--steps", type=_at_least(1), help=f"timed training steps ({_defaults(sizes, 'steps')})")
    speed_parser.add_argument("--warmup", type=_at_least(1), help=f"untimed steps first ({_defaults(sizes, 'warmup')})")
    sizes = accuracy.SIZE_DEFAULTS
    accuracy_parser = commands.add_parser("accuracy", help="test accuracy of a short KD run along each path, "
                                                           "several seeds")
    accuracy_parser.add_argument("--pair", choices=tuple(PAIRS), default="demo")
    accuracy_parser.add_argument("--epochs", type=_at_least(1),
                                 help=f"epochs of every run ({_defaults(sizes, 'epochs')})")
    accuracy_parser.add_argument("--seeds", type=_seeds,
                                 help=f"student seeds, two at least ({_defaults(sizes, 'seeds')})")
    accuracy_parser.add_argument("--images", type=_at_least(1), help=f"synthetic training images "
                                 f"({_defaults(sizes, 'images')})")
    accuracy_parser.add_argument("--test-images", type=_at_least(1), help=f"synthetic test images "
                                 f"({_defaults(sizes, 'test_images')})")
    for sub, sizes in ((speed_parser, speed.SIZE_DEFAULTS), (accuracy_parser, accuracy.SIZE_DEFAULTS)):
        sub.add_argument("--device", type=_device, default="auto", help="auto (a free GPU, else the CPU), cpu, cuda "
                         "or cuda:N")
        sub.add_argument("--workers", type=_at_least(0), help=f"the reference DataLoader's worker processes "
                         f"({_defaults(sizes, 'workers')})")
        sub.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                         help="torch.compile on compresslib's path (auto: on for CUDA, off for the CPU)")
        sub.add_argument("--out", type=Path, help="write every figure, the device and the settings as JSON")
    return parser


# per command: sizes per device type, settings, run, report
COMMANDS = {
    "speed": (speed.SIZE_DEFAULTS, speed.SpeedSettings, speed.run_speed, speed.format_speed),
    "accuracy": (accuracy.SIZE_DEFAULTS, accuracy.AccuracySettings, accuracy.run_accuracy, accuracy.format_accuracy),
}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.device.startswith("cuda"):
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0 or torch.device(args.device).index not in (None, *range(visible)):
            raise ValueError(f"--device {args.device}: {visible} CUDA device(s) visible")
    sizes, settings_type, run, report = COMMANDS[args.command]
    with place(args.device) as placement:  # auto leases a free GPU for the whole benchmark
        device = placement.device
        if device.type == "cuda" and device.index is None:  # the measuring processes need it by index
            device = torch.device("cuda", torch.cuda.current_device())
        chosen = {key: getattr(args, key) for key in sizes[device.type] if getattr(args, key) is not None}
        settings = settings_type(
            device=str(device), compile=args.compile == "on" or (args.compile == "auto" and device.type == "cuda"),
            **({"tasks": args.tasks} if args.command == "speed" else {"pair": args.pair}),
            **(sizes[device.type] | chosen))
        result = run(settings, placement)
    print(report(result))
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    run_main(main)
