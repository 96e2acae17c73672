"""What the GPU check imports, against the pins of constraints.txt, checked before anything else runs.

A device image may lack packages the project pins, or hold other versions of them. Each package the check's code
imports (:data:`REQUIRED`; triton too where it compiles on CUDA) is imported here: it is ``ok``, ``differs`` from
its pin (the check runs, and its figures are for that version), ``missing``, or ``broken`` (installed, but its import
fails: a torchvision built for another torch, say). Missing and broken packages stop the check with the pip command
that installs them at their pins (from a wheel folder with ``--wheels DIR``); ``--install`` runs it.

Only the standard library at import time, so that the file runs as a script where even torch is missing
(``python -m compresslib.bench`` imports torch before any of its commands):

    python compresslib/bench/preflight.py [--cuda] [--install] [--wheels DIR]
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["REQUIRED", "COMPILER", "CONSTRAINTS", "Package", "check", "pins", "pip_command", "blocking",
           "format_report", "main"]

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"
# distribution -> the module the check imports: compresslib's training and benchmark code (torchvision and pillow
# for the originals' loop), its configs (yaml, jsonschema) and plan_cost, which imports the translation code
# (sacrebleu, sentencepiece); tests/test_gpu_check.py checks that this covers every declared dependency it imports
REQUIRED = {"torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "pillow": "PIL", "PyYAML": "yaml",
            "jsonschema": "jsonschema", "sacrebleu": "sacrebleu", "sentencepiece": "sentencepiece"}
COMPILER = {"triton": "triton"}  # torch.compile's code generator for CUDA
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


@dataclass(frozen=True)
class Package:
    name: str  # the distribution, as constraints.txt names it
    module: str
    installed: str | None  # its version; None without metadata (not installed)
    pinned: str | None
    error: str | None = None  # why the import failed

    @property
    def status(self) -> str:
        if self.error is not None:
            return "missing" if self.error.startswith("ModuleNotFoundError") else "broken"
        if self.pinned is None or self.installed is None:
            return "ok"
        return "ok" if self.installed.split("+")[0] == self.pinned else "differs"  # a local tag (+cu130) is a build


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(constraints: Path = CONSTRAINTS) -> dict[str, str]:
    """``name == version`` lines of a constraints file, by normalised name."""
    found = {}
    for line in constraints.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            found[_normalized(match.group(1))] = match.group(2)
    return found


def check(cuda: bool, constraints: Path = CONSTRAINTS) -> list[Package]:
    """Import every package the check needs (triton as well with ``cuda``) and compare its version with its pin."""
    pinned = pins(constraints)
    packages = []
    for name, module in (REQUIRED | (COMPILER if cuda else {})).items():
        error = None
        try:
            importlib.import_module(module)
        except Exception as failure:  # any failure to import is the finding
            first_line = next(iter(str(failure).strip().splitlines()), "")
            error = f"{type(failure).__name__}: {first_line[:160]}"
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        packages.append(Package(name, module, installed, pinned.get(_normalized(name)), error))
    return packages


def blocking(packages: list[Package]) -> list[Package]:
    """The packages without which the check cannot run."""
    return [package for package in packages if package.status in ("missing", "broken")]


def pip_command(packages: list[Package], constraints: Path = CONSTRAINTS, wheels: Path | None = None) -> list[str]:
    """``python -m pip install`` of ``packages`` at their pins, from ``wheels`` (a folder of wheels) when given."""
    source = ["--no-index", "--find-links", str(wheels)] if wheels is not None else []
    return [sys.executable, "-m", "pip", "install", "-c", str(constraints), *source,
            *(package.name for package in packages)]


def format_report(packages: list[Package], constraints: Path = CONSTRAINTS, wheels: Path | None = None) -> str:
    """One line per package that is not ``ok``, a summary, and the pip commands that would fix what is not."""
    lines = [f"preflight: {len(packages)} packages against {constraints.name}: "
             f"{sum(p.status == 'ok' for p in packages)} ok"]
    for package in packages:
        if package.status == "differs":
            lines.append(f"  {package.name:<14} {package.installed} installed, {package.pinned} pinned: the figures "
                         "are for the installed version")
        elif package.status != "ok":
            lines.append(f"  {package.name:<14} {package.status} ({package.error}); pinned {package.pinned}")
    if blocking(packages):
        lines.append(f"to install what is missing: {shlex.join(pip_command(blocking(packages), constraints, wheels))}")
    differing = [package for package in packages if package.status == "differs"]
    if differing:
        lines.append(f"to match the pins too: {shlex.join(pip_command(differing, constraints, wheels))}")
    return "\n".join(lines)


def install(packages: list[Package], constraints: Path = CONSTRAINTS, wheels: Path | None = None) -> None:
    """Run the pip command for ``packages``; raise CalledProcessError where pip fails."""
    subprocess.run(pip_command(packages, constraints, wheels), check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuda", action="store_true", help="check triton too (torch.compile on CUDA)")
    parser.add_argument("--install", action="store_true", help="install what is missing or broken")
    parser.add_argument("--wheels", type=Path, help="install from this folder of wheels (no index)")
    args = parser.parse_args(argv)
    packages = check(args.cuda)
    print(format_report(packages, wheels=args.wheels))
    if blocking(packages) and args.install:
        install(blocking(packages), wheels=args.wheels)
        return 0
    return 2 if blocking(packages) else 0


if __name__ == "__main__":
    sys.exit(main())
