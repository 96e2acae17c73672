"""Build resources/<corpus>/corpus.pt (SentencePiece models, id tensors, raw text, provenance) for translation jobs.

    python workflow_scripts/prepare_corpus.py --corpus onmt_integration --out resources/onmt_integration/corpus.pt \
        --vocab-size 16000 [--max-length 50] [--cased] [--model-type unigram] \
        (--files '{"train_src": "...", "train_tgt": "...", "test_src": "...", "test_tgt": "..."}' \
         | --synthetic '{"train_size": 2000, "test_size": 200, "seed": 0}') \
        [--test-sets '{"newstest2013": {"archive": "resources/newstest2013/downloads/test.tgz"}}'] \
        [--download-records resources/onmt_integration/downloads/de-train-clean.200K.txt.json ...]

--files maps the corpus's roles (compresslib.data.corpus_sources.corpus_downloads) to its raw files; --synthetic
holds make_synthetic_translation's options (synthetic_translation only). Each --test-sets entry, read from its
archive or from {"src": path, "ref": path} (.sgm or plain text), becomes a split named after the test set, which
training translates and scores. --download-records are download.py --record files of the inputs, kept in the
corpus provenance. Text is lower-cased before tokenisation unless --cased. Everything is checked before any text
is read (compresslib.data.corpus.build_corpus); the output is written atomically.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from compresslib.cli import run_main
from compresslib.catalog import CORPORA
from compresslib.data.corpus import build_corpus


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, choices=sorted(CORPORA))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--vocab-size", required=True, type=int, help="SentencePiece pieces per side")
    parser.add_argument("--max-length", type=int, default=50, help="longest training sentence kept, in pieces")
    parser.add_argument("--cased", action="store_true", help="keep case (default: lower-case, as QD and LMA)")
    parser.add_argument("--model-type", default="unigram", help="SentencePiece model type: unigram, bpe, char, word")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--files", type=json.loads, help="JSON {role: path} of the corpus's raw files")
    source.add_argument("--synthetic", type=json.loads, help="JSON options of make_synthetic_translation")
    parser.add_argument("--test-sets", type=json.loads, help='JSON {test set: {"archive": path} or '
                        '{"src": path, "ref": path}}')
    parser.add_argument("--download-records", nargs="*", type=Path, default=[],
                        help="download.py --record files of the inputs")
    args = parser.parse_args(argv)
    build_corpus(args.corpus, args.out, vocab_size=args.vocab_size, files=args.files, synthetic=args.synthetic,
                 test_sets=args.test_sets, download_records=args.download_records, max_length=args.max_length,
                 lowercase=not args.cased, model_type=args.model_type)


if __name__ == "__main__":
    run_main(main)
