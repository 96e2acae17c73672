"""The prepared translation corpus: SentencePiece tokenisers and the one file every translation job reads.

Deviation from QD/LMA: they Moses-tokenised (``tokenizer.perl -a -no-escape``) and kept a 50 K word vocabulary
per side. Here each side gets its own SentencePiece model (:func:`train_sentencepiece`), trained on that side
of the training split only, on the raw (optionally lower-cased) text, so no Perl is needed, there are no
unknown words and decoded output is detokenised text that sacrebleu scores directly. As in QD/LMA, text is
lower-cased before tokenisation by default and training pairs longer than ``max_length`` (here: pieces, not
words) on either side are dropped, while the test set is kept whole: BLEU is computed on all of it, against
the raw references stored in the file.

Building. :func:`build_corpus` is what ``workflow_scripts/prepare_corpus.py`` runs: it checks every input
(roles, files, options, test sets and their languages, download records, settings) before reading any text,
reads the corpus (or generates the synthetic one), adds each test set as a split named after it (training
translates and scores every split but ``train`` and ``valid``), and writes the prepared corpus
(:func:`prepare_corpus`, atomic). Its ``provenance`` entry is::

    {"corpus": name, "source": "files" | "synthetic",
     "files": {role: FILE} (files corpora) | "options": {make_synthetic_translation's arguments} (synthetic),
     "test_sets": {name: {"sacrebleu": "wmt13", "language_pair": "de-en",
                          "members": {"src", "ref"} (read from the archive) | absent,
                          "files": {"archive": FILE} | {"src": FILE, "ref": FILE}}},
     "settings": {"vocab_size", "max_length", "lowercase", "model_type"}}

    FILE = {"path", "bytes", "sha256", "download": the download.py --record of this file (source URL, filename,
            md5, md5_verified, sha256, bytes, seconds), present when one was given}

A download record is matched to the input file with its sha256, so a record that belongs to none of the
inputs is an error rather than a misleading provenance.

The prepared corpus (:func:`prepare_corpus`, :func:`load_corpus`) is one ``torch.save`` file of plain state::

    {"format": 1, "name", "src_lang", "tgt_lang", "vocab_size" (requested), "vocab_sizes": {"src", "tgt"}
     (actual, from the models), "max_length", "lowercase", "spm": {"src": bytes, "tgt": bytes} (model protos),
     "splits": {split: {"src_ids", "tgt_ids" (flat int32), "src_offsets", "tgt_offsets" (int64, n + 1),
                        "src_text", "tgt_text" (raw text, list[str])}},
     "stats": {split: {"pairs", "dropped_long", "dropped_empty", "src_tokens", "tgt_tokens"}},
     "provenance": {...}}

Sentence ``i`` of a side is ``ids[offsets[i]:offsets[i + 1]]``, without bos/eos.
"""

from __future__ import annotations

import inspect
import io
import itertools
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece
import torch

from compresslib.catalog import BOS_ID, EOS_ID, PAD_ID, UNK_ID, corpus_info
from compresslib.data.corpus_sources import TEST_SETS, corpus_downloads, get_test_set, read_corpus_pairs, \
    read_test_set, test_set_members
from compresslib.data.synthetic_translation import make_synthetic_translation
from compresslib.io import load_versioned, read_json_object, save_torch, sha256_file

__all__ = ["FORMAT_VERSION", "SIDES", "check_corpus_settings", "train_sentencepiece", "Tokenizer", "prepare_corpus",
           "load_corpus", "split_sentences", "tokenizers", "build_corpus"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SIDES = ("src", "tgt")
TRAIN_SPLIT = "train"  # the only split that is length-filtered and that the SentencePiece models learn from
_RECORD_KEYS = ("source", "filename", "md5", "sha256", "bytes")  # what a download.py --record must hold
_ENCODE_CHUNK = 65536  # sentences encoded at a time, so a 1.7 M-pair split never exists as Python id lists


# --- SentencePiece ----------------------------------------------------------------------------------------------

def _check_sentencepiece_settings(vocab_size: int, model_type: str) -> None:
    if vocab_size <= 4:
        raise ValueError(f"vocab_size must exceed the 4 special pieces (pad, unk, bos, eos), got {vocab_size}")
    if model_type not in ("unigram", "bpe", "char", "word"):
        raise ValueError(f"unknown SentencePiece model_type {model_type!r}; use unigram, bpe, char or word")


def check_corpus_settings(vocab_size: int, max_length: int, model_type: str) -> None:
    """Refuse settings :func:`prepare_corpus` cannot use, so a caller can check them before reading any data."""
    _check_sentencepiece_settings(vocab_size, model_type)
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")


def train_sentencepiece(sentences: Sequence[str], vocab_size: int, model_type: str = "unigram") -> bytes:
    """Train a SentencePiece model on ``sentences`` in memory and return its serialized proto.

    The settings make it deterministic (the same sentences give byte-identical protos; there is no seed) and
    self-contained: every sentence is used in the given order (``input_sentence_size=0``, no shuffling), one
    thread, ``character_coverage=1.0`` (every character seen gets a piece), ids pad 0, unk 1, bos 2, eos 3, and
    ``hard_vocab_limit=False`` so a small corpus yields a smaller vocabulary instead of failing. Normalisation
    is SentencePiece's default ``nmt_nfkc`` (NFKC, whitespace runs collapsed). Sentences over 4192 bytes are
    skipped by SentencePiece when training (its ``max_sentence_length``), but can still be encoded.
    """
    if isinstance(sentences, str):
        raise TypeError("train_sentencepiece takes a sequence of sentences, not one string")
    if not any(sentence.strip() for sentence in sentences):
        raise ValueError("cannot train a SentencePiece model on an empty corpus (no non-blank sentence)")
    _check_sentencepiece_settings(vocab_size, model_type)
    writer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=writer, vocab_size=vocab_size, model_type=model_type,
        character_coverage=1.0, pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        input_sentence_size=0, shuffle_input_sentence=False, num_threads=1, hard_vocab_limit=False,
        minloglevel=2,  # errors only: the trainer otherwise logs hundreds of lines to stderr
    )
    return writer.getvalue()


class Tokenizer:
    """A SentencePiece model held in memory (from its serialized proto): text <-> piece ids."""

    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = bytes(model_proto)
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=self.model_proto)

    @property
    def vocab_size(self) -> int:
        return self._processor.vocab_size()

    @property
    def pad_id(self) -> int:
        return self._processor.pad_id()

    @property
    def unk_id(self) -> int:
        return self._processor.unk_id()

    @property
    def bos_id(self) -> int:
        return self._processor.bos_id()

    @property
    def eos_id(self) -> int:
        return self._processor.eos_id()

    def encode(self, texts: Sequence[str], *, add_bos: bool = False, add_eos: bool = False) -> list[list[int]]:
        """Piece ids of each text (no bos/eos unless asked). Lower-casing is the caller's job (``lowercase``)."""
        if isinstance(texts, str):
            raise TypeError("Tokenizer.encode takes a list of texts, not one string")
        return self._processor.encode(list(texts), add_bos=add_bos, add_eos=add_eos)

    def decode(self, ids: Iterable[Sequence[int] | torch.Tensor]) -> list[str]:
        """Text of each id sequence; pad, bos and eos decode to nothing, unk to " ⁇ "."""
        return self._processor.decode([seq.tolist() if isinstance(seq, torch.Tensor) else list(seq) for seq in ids])


# --- the prepared corpus ----------------------------------------------------------------------------------------

def _encode_flat(tokenizer: Tokenizer, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(lengths int64, flat ids int32)`` of ``texts``, encoded a chunk at a time."""
    lengths, flats = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int32)]
    for start in range(0, len(texts), _ENCODE_CHUNK):
        ids = tokenizer.encode(texts[start:start + _ENCODE_CHUNK])
        chunk_lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        lengths.append(chunk_lengths)
        flats.append(np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=int(chunk_lengths.sum())))
    return np.concatenate(lengths), np.concatenate(flats)


def _offsets(lengths: np.ndarray) -> torch.Tensor:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return torch.from_numpy(offsets)


def prepare_corpus(
    name: str,
    pairs_by_split: dict[str, Sequence[tuple[str, str]]],
    out_path: str | Path,
    *,
    vocab_size: int,
    max_length: int = 50,
    lowercase: bool = True,
    provenance: dict,
    model_type: str = "unigram",
    log: logging.Logger | None = None,
) -> dict[str, Any]:
    """Tokenise ``pairs_by_split`` (must hold ``train``) and write the prepared corpus to ``out_path`` atomically.

    One SentencePiece model per side is trained on that side of the training split (lower-cased first when
    ``lowercase``). Training pairs with an empty side or with more than ``max_length`` pieces on either side
    (bos/eos not counted) are dropped and counted; every other split is kept whole. The raw text of every kept
    pair is stored beside its ids. Returns the corpus as written (the structure :func:`load_corpus` returns).
    """
    log = log or logger
    info = corpus_info(name)
    check_corpus_settings(vocab_size, max_length, model_type)
    if TRAIN_SPLIT not in pairs_by_split:
        raise ValueError(f"{name}: pairs_by_split needs a {TRAIN_SPLIT!r} split, got {', '.join(pairs_by_split)}")
    empty = [split for split, pairs in pairs_by_split.items() if not pairs]
    if empty:
        raise ValueError(f"{name}: split(s) {', '.join(empty)} hold no pairs")

    def case(texts: Iterable[str]) -> list[str]:
        return [text.lower() for text in texts] if lowercase else list(texts)

    train = pairs_by_split[TRAIN_SPLIT]
    spm = {side: train_sentencepiece(case(pair[index] for pair in train), vocab_size, model_type)
           for index, side in enumerate(SIDES)}
    tokenizer = {side: Tokenizer(proto) for side, proto in spm.items()}
    splits, stats = {}, {}
    for split, pairs in pairs_by_split.items():
        raw = {side: [pair[index] for pair in pairs] for index, side in enumerate(SIDES)}
        encoded = {side: _encode_flat(tokenizer[side], case(raw[side])) for side in SIDES}
        keep = np.ones(len(pairs), dtype=bool)
        dropped_empty = dropped_long = 0
        if split == TRAIN_SPLIT:
            lengths = np.stack([encoded[side][0] for side in SIDES])
            empty_pair = (lengths == 0).any(axis=0)
            long_pair = ~empty_pair & (lengths > max_length).any(axis=0)
            keep = ~(empty_pair | long_pair)
            dropped_empty, dropped_long = int(empty_pair.sum()), int(long_pair.sum())
        entry: dict[str, Any] = {}
        for side in SIDES:
            lengths, flat = encoded[side]
            if not keep.all():
                flat, lengths = flat[np.repeat(keep, lengths)], lengths[keep]
            entry[f"{side}_ids"] = torch.from_numpy(np.ascontiguousarray(flat, dtype=np.int32))
            entry[f"{side}_offsets"] = _offsets(lengths)
            entry[f"{side}_text"] = list(itertools.compress(raw[side], keep))
        splits[split] = entry
        stats[split] = {"pairs": int(keep.sum()), "dropped_long": dropped_long, "dropped_empty": dropped_empty,
                        "src_tokens": entry["src_ids"].numel(), "tgt_tokens": entry["tgt_ids"].numel()}
        log.info("%s %s: %d pairs kept, %d too long, %d empty; %d source / %d target pieces", name, split,
                 stats[split]["pairs"], dropped_long, dropped_empty, stats[split]["src_tokens"],
                 stats[split]["tgt_tokens"])
    payload = {
        "format": FORMAT_VERSION, "name": name, "src_lang": info.src_lang, "tgt_lang": info.tgt_lang,
        "vocab_size": vocab_size, "vocab_sizes": {side: tokenizer[side].vocab_size for side in SIDES},
        "max_length": max_length, "lowercase": lowercase, "spm": spm, "splits": splits, "stats": stats,
        "provenance": provenance,
    }
    _check_corpus(payload, str(out_path))
    save_torch(out_path, payload, checksum=True)
    return payload


def load_corpus(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """Read a prepared corpus and check it, naming the file and the problem on any inconsistency."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prepared corpus {path} does not exist (prepare it with prepare_corpus)")
    payload = load_versioned(path, FORMAT_VERSION, "prepared translation corpus", "prepare it again", mmap=mmap)
    _check_corpus(payload, str(path))
    return payload


_TOP_KEYS = ("name", "src_lang", "tgt_lang", "vocab_size", "vocab_sizes", "max_length", "lowercase", "spm",
             "splits", "stats", "provenance")
_SPLIT_KEYS = ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets", "src_text", "tgt_text")


def _check_corpus(corpus: dict, where: str) -> None:
    missing = [key for key in _TOP_KEYS if key not in corpus]
    if missing:
        raise ValueError(f"{where}: corpus lacks {', '.join(missing)}")
    spm = corpus["spm"]
    if not isinstance(spm, dict) or any(not isinstance(spm.get(side), bytes) for side in SIDES):
        raise ValueError(f"{where}: spm must map src and tgt to serialized SentencePiece models (bytes)")
    sizes = corpus["vocab_sizes"] if isinstance(corpus["vocab_sizes"], dict) else {}
    vocab = {}
    for side in SIDES:
        try:
            vocab[side] = Tokenizer(spm[side]).vocab_size
        except Exception as error:  # sentencepiece raises RuntimeError or OSError on a bad proto
            raise ValueError(f"{where}: the {side} SentencePiece model does not load ({error})") from error
        if sizes.get(side) != vocab[side]:
            raise ValueError(f"{where}: vocab_sizes[{side!r}] is {sizes.get(side)}, but the "
                             f"{side} model has {vocab[side]} pieces")
    splits, stats = corpus["splits"], corpus["stats"]
    if not isinstance(splits, dict) or TRAIN_SPLIT not in splits or not isinstance(stats, dict):
        raise ValueError(f"{where}: splits and stats must be dicts, splits holding {TRAIN_SPLIT!r}")
    for split, entry in splits.items():
        missing = [key for key in _SPLIT_KEYS if key not in entry]
        if missing:
            raise ValueError(f"{where}: split {split!r} lacks {', '.join(missing)}")
        counts = {}
        for side in SIDES:
            ids, offsets, label = entry[f"{side}_ids"], entry[f"{side}_offsets"], f"{split} {side}"
            if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int32 or ids.ndim != 1:
                raise ValueError(f"{where}: {label}_ids must be a flat int32 tensor")
            if not isinstance(offsets, torch.Tensor) or offsets.dtype != torch.int64 or offsets.ndim != 1 \
                    or len(offsets) < 1:
                raise ValueError(f"{where}: {label}_offsets must be a non-empty 1-D int64 tensor")
            if offsets[0] != 0 or offsets[-1] != ids.numel():
                raise ValueError(f"{where}: {label}_offsets run from {int(offsets[0])} to {int(offsets[-1])}, but "
                                 f"must run from 0 to the {ids.numel()} ids (offsets cut short or ids truncated)")
            lengths = offsets.diff()
            if len(lengths) and lengths.min() < 0:
                raise ValueError(f"{where}: {label}_offsets are not monotone (decrease at sentence "
                                 f"{int((lengths < 0).nonzero()[0])})")
            if ids.numel() and (ids.min() < 0 or ids.max() >= vocab[side]):
                bad = int(ids.max()) if ids.max() >= vocab[side] else int(ids.min())
                raise ValueError(f"{where}: {label}_ids holds id {bad}, outside the {side} vocabulary of "
                                 f"{vocab[side]} pieces (0..{vocab[side] - 1})")
            if split == TRAIN_SPLIT and len(lengths) and lengths.max() > corpus["max_length"]:
                raise ValueError(f"{where}: a {label} sentence has {int(lengths.max())} pieces, over max_length "
                                 f"{corpus['max_length']}")
            text = entry[f"{side}_text"]
            if not isinstance(text, list) or len(text) != len(lengths):
                raise ValueError(f"{where}: {label}_text holds {len(text) if isinstance(text, list) else '?'} "
                                 f"texts for {len(lengths)} sentences")
            counts[side] = len(lengths)
        if counts["src"] != counts["tgt"]:
            raise ValueError(f"{where}: split {split!r} has {counts['src']} source but {counts['tgt']} target "
                             "sentences")
        recorded = stats.get(split, {})
        if recorded.get("pairs") != counts["src"] or recorded.get("src_tokens") != entry["src_ids"].numel() \
                or recorded.get("tgt_tokens") != entry["tgt_ids"].numel():
            raise ValueError(f"{where}: stats[{split!r}] ({recorded}) disagree with the split's "
                             f"{counts['src']} pairs")


def split_sentences(corpus: dict[str, Any], split: str, side: str) -> list[torch.Tensor]:
    """One int64 id tensor per sentence of ``split``'s ``side`` (``src`` or ``tgt``): views of one int64 copy."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    if split not in corpus["splits"]:
        raise ValueError(f"corpus {corpus['name']!r} has no split {split!r}; it has {', '.join(corpus['splits'])}")
    entry = corpus["splits"][split]
    flat = entry[f"{side}_ids"].to(torch.int64)
    return list(torch.split(flat, entry[f"{side}_offsets"].diff().tolist()))


def tokenizers(corpus: dict[str, Any]) -> tuple[Tokenizer, Tokenizer]:
    """The (source, target) tokenizers stored in a prepared corpus."""
    return Tokenizer(corpus["spm"]["src"]), Tokenizer(corpus["spm"]["tgt"])


# --- building a prepared corpus ---------------------------------------------------------------------------------

def _check_paths(where: str, given: Any, roles: Sequence[str]) -> dict[str, Path]:
    """``given`` as {role: existing file}; it must be a JSON object mapping exactly ``roles`` to path strings."""
    if not isinstance(given, dict) or not all(isinstance(path, (str, Path)) for path in given.values()):
        raise ValueError(f"{where} must map {', '.join(roles)} to file paths, got {given!r}")
    if sorted(given) != sorted(roles):
        raise ValueError(f"{where} must give exactly {', '.join(roles)}, got {', '.join(map(str, given)) or 'none'}")
    missing = [f"{role}: {path}" for role, path in given.items() if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"{where}: no such file(s): {'; '.join(missing)}")
    return {role: Path(path) for role, path in given.items()}


def _check_synthetic(options: Any) -> dict[str, int]:
    parameters = inspect.signature(make_synthetic_translation).parameters
    required = [name for name, parameter in parameters.items() if parameter.default is inspect.Parameter.empty]
    if not isinstance(options, dict):
        raise ValueError(f"synthetic options must be a JSON object of {', '.join(parameters)}, got {options!r}")
    unknown = [key for key in options if key not in parameters]
    missing = [key for key in required if key not in options]
    if unknown or missing:
        raise ValueError(f"synthetic options: unknown {', '.join(unknown) or 'none'}, missing "
                         f"{', '.join(missing) or 'none'}; make_synthetic_translation takes {', '.join(parameters)}")
    wrong = [key for key, value in options.items() if not isinstance(value, int) or isinstance(value, bool)]
    if wrong:
        raise ValueError(f"synthetic options {', '.join(wrong)} must be whole numbers, got {options}")
    return dict(options)


def _read_download_records(paths: Sequence[str | Path]) -> list[tuple[Path, dict]]:
    records = []
    for path in map(Path, paths):
        record = read_json_object(path, "download record")
        if any(key not in record for key in _RECORD_KEYS):
            raise ValueError(f"download record {path} must have {', '.join(_RECORD_KEYS)} "
                             "(what workflow_scripts/download.py --record writes)")
        records.append((path, record))
    return records


def _describe_files(paths: dict[str, Path], records: list[tuple[Path, dict]], used: set[Path]) -> dict[str, dict]:
    """{role: {path, bytes, sha256[, download]}}; a record goes to the file with its sha256 (noted in ``used``)."""
    described = {}
    for role, path in paths.items():
        entry = {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
        for record_path, record in records:
            if (record["sha256"], record["bytes"]) == (entry["sha256"], entry["bytes"]):
                entry["download"] = record
                used.add(record_path)
        described[role] = entry
    return described


def build_corpus(
    name: str,
    out_path: str | Path,
    *,
    vocab_size: int,
    files: dict[str, str | Path] | None = None,
    synthetic: dict[str, int] | None = None,
    test_sets: dict[str, dict[str, str | Path]] | None = None,
    download_records: Sequence[str | Path] = (),
    max_length: int = 50,
    lowercase: bool = True,
    model_type: str = "unigram",
    log: logging.Logger | None = None,
) -> dict[str, Any]:
    """Prepare corpus ``name`` into ``out_path`` from its raw ``files`` ({role: path}, the roles of
    :func:`corpus_downloads`) or, for the generated corpus, from ``synthetic`` (make_synthetic_translation's
    options), plus each of ``test_sets`` ({test set: {"archive": path} or {"src": path, "ref": path}}) as an
    extra split named after it. ``download_records``: download.py ``--record`` files of the inputs, kept in the
    provenance. Everything is checked before any text is read; on failure nothing is written.
    Returns the corpus as written (:func:`prepare_corpus`); the provenance layout is in the module docstring.
    """
    log = log or logger
    info = corpus_info(name)
    check_corpus_settings(vocab_size, max_length, model_type)
    if (files is None) == (synthetic is None):
        raise ValueError(f"corpus {name}: give either its files or synthetic options, not "
                         f"{'both' if files is not None else 'neither'}")
    if synthetic is not None and info.files:
        raise ValueError(f"synthetic options are only for generated corpora; {name} is read from its files "
                         f"({', '.join(info.files)})")
    paths = _check_paths(f"{name} files", files, list(corpus_downloads(name))) if files is not None else {}
    options = _check_synthetic(synthetic) if synthetic is not None else {}
    if test_sets is not None and not isinstance(test_sets, dict):
        raise ValueError(f"test sets must map test set names to their files, got {test_sets!r}")
    test_set_paths = {}
    for test_set, given in (test_sets or {}).items():
        get_test_set(test_set)
        if not info.files:
            raise ValueError(f"test set {test_set} cannot be added to {name}: a generated corpus has no real "
                             f"languages ({info.src_lang} -> {info.tgt_lang})")
        test_set_members(test_set, info.src_lang, info.tgt_lang)
        if not isinstance(given, dict) or sorted(given) not in (["archive"], ["ref", "src"]):
            raise ValueError(f"test set {test_set}: give {{'archive': path}} or {{'src': path, 'ref': path}}, "
                             f"got {given!r}")
        test_set_paths[test_set] = _check_paths(f"test set {test_set}", given, list(given))
    records = _read_download_records(download_records)

    used: set[Path] = set()
    provenance: dict[str, Any] = {"corpus": name, "source": "files" if info.files else "synthetic"}
    if info.files:
        provenance["files"] = _describe_files(paths, records, used)
    else:
        provenance["options"] = options
    provenance["test_sets"] = {}
    for test_set, given in test_set_paths.items():
        members = test_set_members(test_set, info.src_lang, info.tgt_lang)
        provenance["test_sets"][test_set] = {
            "sacrebleu": TEST_SETS[test_set].sacrebleu, "language_pair": f"{info.src_lang}-{info.tgt_lang}",
            **({"members": dict(zip(("src", "ref"), members))} if "archive" in given else {}),
            "files": _describe_files(given, records, used)}
    unmatched = [f"{path} ({record['filename']}, sha256 {record['sha256']})" for path, record in records
                 if path not in used]
    if unmatched:
        raise ValueError(f"download record(s) {'; '.join(unmatched)} match none of the input files by sha256 and "
                         "size: a record of another file, or the file changed since it was downloaded")
    provenance["settings"] = {"vocab_size": vocab_size, "max_length": max_length, "lowercase": lowercase,
                              "model_type": model_type}

    # Test sets first: they are small, so a bad one fails before the corpus is read.
    extra = {test_set: read_test_set(test_set, info.src_lang, info.tgt_lang, **given)
             for test_set, given in test_set_paths.items()}
    pairs = read_corpus_pairs(name, paths) if info.files else make_synthetic_translation(**options)
    return prepare_corpus(name, {**pairs, **extra}, out_path, vocab_size=vocab_size, max_length=max_length,
                          lowercase=lowercase, provenance=provenance, model_type=model_type, log=log)
