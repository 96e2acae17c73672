"""``python -m compresslib <command>``: the package's commands. ``status``: a running study at a glance
(``compresslib.status``). The benchmarks and the cost planner keep their own (``python -m compresslib.bench``,
``python -m compresslib.plan_cost``)."""

from __future__ import annotations

import argparse

from compresslib import status

COMMANDS = {"status": status.main}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m compresslib", description=__doc__)
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the command's own (see <command> --help)")
    args = parser.parse_args(argv)
    COMMANDS[args.command](args.arguments)


if __name__ == "__main__":
    main()
