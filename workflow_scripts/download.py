"""Download one file and check it (the download rules; they run on the login node).

    python workflow_scripts/download.py --dataset cifar10 --out resources/cifar10/archive.tar.gz \
        [--mirror https://mirror.example/cifar/ | --mirror /shared/archives] [--record PATH]
    python workflow_scripts/download.py --source onmt_integration --file de-train-clean.200K.txt \
        --out resources/onmt_integration/downloads/de-train-clean.200K.txt [--mirror ...] [--record PATH]

--dataset fetches a dataset archive (compresslib.data.download.ARCHIVES); --source/--file fetch one file of a
translation corpus or test set (compresslib.data.corpus_sources.downloads(): the corpora publish no md5, so
their size and digests are recorded; a test set's md5 is checked). A mirror is a URL base or a local directory
holding the file under its official name. --record writes the fetch's provenance (source, filename, md5, sha256,
bytes, md5_verified, seconds) as JSON, which prepare_corpus.py --download-records keeps.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from compresslib.cli import run_main
from compresslib.data.download import ARCHIVES, fetch_archive
from compresslib.io import write_json
from compresslib.data.corpus_sources import source_archive


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--dataset", choices=sorted(ARCHIVES))
    kind.add_argument("--source", help="translation corpus or test set (with --file)")
    parser.add_argument("--file", help="official file name of the --source file to fetch")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--mirror", help="URL base or local directory holding the official file")
    parser.add_argument("--record", type=Path, help="write the download's provenance here as JSON")
    args = parser.parse_args(argv)
    if (args.source is None) != (args.file is None):
        parser.error("--source and --file go together")
    archive = ARCHIVES[args.dataset] if args.dataset else source_archive(args.source, args.file)
    record = fetch_archive(archive, args.out, mirror=args.mirror)
    if args.record is not None:
        write_json(args.record, record)
    logging.getLogger("compresslib").info("downloaded: %s", json.dumps(record))


if __name__ == "__main__":
    run_main(main)
