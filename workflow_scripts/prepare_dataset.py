"""Build resources/<dataset>/dataset.pt (uint8 tensors + provenance) that training jobs load.

    python workflow_scripts/prepare_dataset.py --dataset cifar10 --out resources/cifar10/dataset.pt \
        (--archive resources/cifar10/archive.tar.gz | --extracted /data/cifar [--no-verify] | --synthetic '{}')

Generated datasets (synthetic, synthetic_text) take --synthetic with their generator's options as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from compresslib.cli import run_main
from compresslib.catalog import DATASETS
from compresslib.data.datasets import prepare_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--out", required=True, type=Path)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--archive", type=Path, help="md5-verified archive from the download rule")
    source.add_argument("--extracted", type=Path, help="folder holding the extracted archive's layout "
                        "(cifar-10-batches-py/..., amazon_review_full_csv/{train,test}.csv)")
    source.add_argument("--synthetic", type=json.loads, help="JSON options of a generated dataset's generator")
    parser.add_argument("--no-verify", action="store_true", help="skip the md5 check of an --extracted folder")
    args = parser.parse_args(argv)
    prepare_dataset(args.dataset, args.out, archive=args.archive, extracted=args.extracted,
                    verify_checksums=not args.no_verify, synthetic=args.synthetic)


if __name__ == "__main__":
    run_main(main)
