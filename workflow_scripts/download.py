"""Download a dataset archive and verify its md5 (the download_archive rule; runs on the login node).

    python workflow_scripts/download.py --dataset cifar10 --out resources/cifar10/archive.tar.gz \
        [--mirror https://mirror.example/cifar/ | --mirror /shared/archives]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from compresslib.cli import run_main
from compresslib.data.download import ARCHIVES, fetch_archive


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=sorted(ARCHIVES))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--mirror", help="URL base or local directory holding the official archive file")
    args = parser.parse_args(argv)
    record = fetch_archive(ARCHIVES[args.dataset], args.out, mirror=args.mirror)
    logging.getLogger("compresslib").info("downloaded: %s", json.dumps(record))


if __name__ == "__main__":
    run_main(main)
