"""Command line of the benchmarks (docs/benchmarks.md):

    python -m compresslib.bench speed [--device auto|cpu|cuda] [--pairs demo,conv,wrn] [--tasks teacher,ce,kd,inference]
        [--images N] [--steps N] [--warmup N] [--workers N] [--compile auto|on|off] [--out result.json]
    python -m compresslib.bench accuracy [--pair demo] [--epochs N] [--seeds 1,2,3] [--images N] [--test-images N]
        [--device ...] [--workers N] [--compile ...] [--out result.json]
    python -m compresslib.bench gpu-check [--size full|tiny] [--device ...] [--compile ...] [--slots N]
        [--install] [--wheels DIR] [--out result.json]

Sizes left out take the device's defaults (small on the CPU, CIFAR-sized on CUDA). The report goes to stdout,
every figure with the device, versions and settings to ``--out`` as JSON. gpu-check first checks the packages it
imports against constraints.txt (compresslib.bench.preflight) and imports the benchmarks only then, so it is parsed
before the other commands' parser, which needs them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from compresslib.bench import preflight
from compresslib.cli import run_main
from compresslib.devices import place
from compresslib.gpu_slots import SLOTS_ENV, slots_per_gpu
from compresslib.io import write_json
from compresslib.training.compiled import compile_wanted

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


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=_device, default="auto", help="auto (a free GPU, else the CPU), cpu, cuda "
                        "or cuda:N")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="torch.compile on compresslib's path (auto: on for CUDA, off for the CPU)")
    parser.add_argument("--out", type=Path, help="write every figure, the device and the settings as JSON")


def _add_gpu_check_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=("full", "tiny"), default="full",
                        help="full: the figures, sized for 8 minutes of an H100; tiny: every row at a few images and "
                        "steps (the CPU, the test suite)")
    parser.add_argument("--slots", type=_at_least(1), help=f"student jobs sharing the GPU in row f (default: "
                        f"{SLOTS_ENV}, else {slots_per_gpu({})})")
    parser.add_argument("--install", action="store_true", help="install what the preflight finds missing, then run")
    parser.add_argument("--wheels", type=Path, help="install from this folder of wheels (pip --no-index)")
    _add_device_options(parser)


def _parser() -> argparse.ArgumentParser:
    from compresslib.bench import accuracy, speed
    from compresslib.bench.pairs import PAIRS

    parser = argparse.ArgumentParser(prog="python -m compresslib.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_gpu_check_options(commands.add_parser("gpu-check", help="the figures the project needs from a GPU, one "
                                               "table (docs/benchmarks.md)"))
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
        sub.add_argument("--workers", type=_at_least(0), help=f"the reference DataLoader's worker processes "
                         f"({_defaults(sizes, 'workers')})")
        _add_device_options(sub)
    return parser


def _check_visible(requested: str) -> None:
    if requested.startswith("cuda"):
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0 or torch.device(requested).index not in (None, *range(visible)):
            raise ValueError(f"--device {requested}: {visible} CUDA device(s) visible")


def _indexed(device: torch.device) -> torch.device:
    """``device``, a GPU by index: the measuring processes need it so."""
    return torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" and device.index is None \
        else device


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["gpu-check"]:
        _gpu_check(argv[1:])
        return
    from compresslib.bench import accuracy, speed

    args = _parser().parse_args(argv)
    _check_visible(args.device)
    sizes, settings_type, run, report = {  # per command: sizes per device type, settings, run, report
        "speed": (speed.SIZE_DEFAULTS, speed.SpeedSettings, speed.run_speed, speed.format_speed),
        "accuracy": (accuracy.SIZE_DEFAULTS, accuracy.AccuracySettings, accuracy.run_accuracy,
                     accuracy.format_accuracy),
    }[args.command]
    with place(args.device) as placement:  # auto leases a free GPU for the whole benchmark
        device = _indexed(placement.device)
        chosen = {key: getattr(args, key) for key in sizes[device.type] if getattr(args, key) is not None}
        settings = settings_type(
            device=str(device), compile=compile_wanted(args.compile, device),
            **({"tasks": args.tasks} if args.command == "speed" else {"pair": args.pair}),
            **(sizes[device.type] | chosen))
        result = run(settings, placement)
    print(report(result))
    if args.out is not None:
        write_json(args.out, result)


def _gpu_check(argv: list[str]) -> None:
    """Preflight, then the GPU check; exits 2 where packages are missing (1 where a row failed)."""
    parser = argparse.ArgumentParser(prog="python -m compresslib.bench gpu-check",
                                     description="The figures the project needs from a GPU, in one table "
                                                 "(compresslib.bench.gpu_check, docs/benchmarks.md).")
    _add_gpu_check_options(parser)
    args = parser.parse_args(argv)
    _check_visible(args.device)
    tick = time.perf_counter()
    packages = preflight.check(cuda=args.device != "cpu" and torch.cuda.is_available())
    print(preflight.format_report(packages, wheels=args.wheels), flush=True)
    missing = preflight.blocking(packages)
    if missing and not args.install:
        raise SystemExit(2)
    if missing:  # installed, the check starts afresh: nothing imported before the install is kept
        preflight.install(missing, wheels=args.wheels)
        os.execv(sys.executable, [sys.executable, "-m", "compresslib.bench", "gpu-check",
                                  *(arg for arg in argv if arg != "--install")])
    preflight_s = time.perf_counter() - tick
    from compresslib.bench import gpu_check

    with place(args.device) as placement:  # auto leases a whole free GPU for the whole check
        device = _indexed(placement.device)
        if device.type == "cpu" and args.size == "full":
            raise ValueError("--size full is sized for a GPU (hours on a CPU); on the CPU run --size tiny")
        settings = gpu_check.GpuCheckSettings(device=str(device), size=args.size,
                                              compile=compile_wanted(args.compile, device),
                                              slots=args.slots or slots_per_gpu(),
                                              workers=gpu_check.preparing_processes())
        result = gpu_check.run_gpu_check(settings, placement)
    result["preflight"] = [dataclasses.asdict(package) | {"status": package.status} for package in packages]
    result["stage_seconds"] = {"preflight": preflight_s, **result["stage_seconds"]}
    print(gpu_check.format_gpu_check(result))
    if args.out is not None:
        write_json(args.out, result)
    if any(row["verdict"] == "FAILED" for row in result["rows"]):
        raise SystemExit(1)


if __name__ == "__main__":
    run_main(main)
