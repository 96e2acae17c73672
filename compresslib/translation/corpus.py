"""Parallel corpora for machine translation (de→en): reading, SentencePiece tokenisers, the prepared corpus file.

Corpora (reference/seeds.md §1.7, §2.6; QD's and LMA's ``-data integ`` and ``-data wmt``):

- ``onmt_integration``: OpenNMT's "integration test" data, already clean, de→en. The 200 K training pairs
  ``{de,en}-train-clean.200K.txt`` are the training set and the 10 K validation pairs
  ``{de,en}-val-clean.10K.txt`` are used **as the test set**, as QD and LMA did.
- ``wmt13_europarl``: "WMT13 DE-EN", which is Europarl v7 only (``training-parallel-europarl-v7.tgz``, about
  600 MB). Only the members ending ``europarl-v7.de-en.de`` and ``europarl-v7.de-en.en`` are read, streamed
  out of the gzip stream (:func:`read_europarl_archive`); nothing is extracted. Pairs whose German side is
  blank are dropped, then the first 90 % of the remaining pairs are the training set and the last 10 % the
  test set (:func:`split_europarl`, QD's split). There is no newstest in this recipe.

Neither source publishes checksums: the download layer records each file's size and sha256 in the provenance
instead of verifying them. This module reads files that are already on disk.

Deviation from QD/LMA: they Moses-tokenised (``tokenizer.perl -a -no-escape``) and kept a 50 K word vocabulary
per side. Here each side gets its own SentencePiece model (:func:`train_sentencepiece`), trained on that side
of the training split only, on the raw (optionally lower-cased) text, so no Perl is needed, there are no
unknown words and decoded output is detokenised text that sacrebleu scores directly. As in QD/LMA, text is
lower-cased before tokenisation by default and training pairs longer than ``max_length`` (here: pieces, not
words) on either side are dropped, while the test set is kept whole: BLEU is computed on all of it, against
the raw references stored in the file.

:func:`read_sgm` reads WMT's SGML test sets (e.g. newstest2013, what sacrebleu's ``wmt13`` uses);
``compresslib.translation.sources`` says where the files and the extra test sets come from and builds a prepared
corpus from them.
:func:`make_synthetic_translation` builds a small deterministic transduction task for the offline demo.

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

import io
import itertools
import logging
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import sentencepiece
import torch

from compresslib.io import load_versioned, save_torch

__all__ = [
    "CorpusInfo",
    "CORPORA",
    "FORMAT_VERSION",
    "SIDES",
    "corpus_info",
    "read_lines",
    "read_parallel_text",
    "read_tar_members",
    "read_europarl_archive",
    "split_europarl",
    "read_corpus_pairs",
    "parse_sgm",
    "read_sgm",
    "check_corpus_settings",
    "train_sentencepiece",
    "Tokenizer",
    "prepare_corpus",
    "load_corpus",
    "split_sentences",
    "tokenizers",
    "make_synthetic_translation",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SIDES = ("src", "tgt")
TRAIN_SPLIT = "train"  # the only split that is length-filtered and that the SentencePiece models learn from
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
EUROPARL_MEMBERS = ("europarl-v7.de-en.de", "europarl-v7.de-en.en")  # (src, tgt): German -> English
EUROPARL_TRAIN_PERCENT = 90
_ENCODE_CHUNK = 65536  # sentences encoded at a time, so a 1.7 M-pair split never exists as Python id lists


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    src_lang: str
    tgt_lang: str
    files: dict[str, str] = field(default_factory=dict)  # role -> official URL
    description: str = ""


_ONMT = "https://raw.githubusercontent.com/OpenNMT/IntegrationTesting/master/data/"
CORPORA: dict[str, CorpusInfo] = {
    "onmt_integration": CorpusInfo(
        "onmt_integration", "de", "en",
        {"train_src": _ONMT + "de-train-clean.200K.txt", "train_tgt": _ONMT + "en-train-clean.200K.txt",
         "test_src": _ONMT + "de-val-clean.10K.txt", "test_tgt": _ONMT + "en-val-clean.10K.txt"},
        "OpenNMT integration-test data, 200 K training pairs; the 10 K validation pairs are the test set (QD/LMA)",
    ),
    "wmt13_europarl": CorpusInfo(
        "wmt13_europarl", "de", "en",
        {"archive": "http://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz"},
        "WMT13 Europarl v7 de-en; blank German lines dropped, first 90 % train, last 10 % test (QD)",
    ),
    "synthetic_translation": CorpusInfo(
        "synthetic_translation", "x-src", "x-tgt", {},
        "deterministic word-substitution-and-reversal task (make_synthetic_translation), for the offline demo",
    ),
}


def corpus_info(name: str) -> CorpusInfo:
    """The registry entry of corpus ``name``; an unknown name is an error listing the known ones."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known corpora: {', '.join(CORPORA)}")
    return CORPORA[name]


# --- reading raw text -------------------------------------------------------------------------------------------

def _read_lines(handle: BinaryIO, where: str) -> list[str]:
    """The UTF-8 lines of a binary stream without their line ends.

    Only ``\\n`` ends a line (``str.splitlines`` would also split on U+2028, U+0085 and the like, which occur
    inside Europarl sentences); a ``\\r`` before it (CRLF files) is dropped too.
    """
    lines = []
    for number, raw in enumerate(handle, start=1):
        if raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise ValueError(f"{where}: line {number} is not valid UTF-8 ({error})") from error
    return lines


def read_lines(path: str | Path) -> list[str]:
    """The UTF-8 lines of a text file, one sentence a line (line ends as in :func:`_read_lines`)."""
    with open(path, "rb") as handle:
        return _read_lines(handle, str(path))


def read_parallel_text(src_path: str | Path, tgt_path: str | Path) -> list[tuple[str, str]]:
    """Pair line ``i`` of ``src_path`` with line ``i`` of ``tgt_path`` (UTF-8, one sentence a line)."""
    sides = [read_lines(src_path), read_lines(tgt_path)]
    if len(sides[0]) != len(sides[1]):
        raise ValueError(f"parallel files differ in length: {src_path} has {len(sides[0])} lines, "
                         f"{tgt_path} has {len(sides[1])}")
    return list(zip(*sides))


_Member = TypeVar("_Member")


def read_tar_members(path: str | Path, select: Callable[[str], str | None],
                     read: Callable[[BinaryIO, str], _Member], what: str) -> dict[str, _Member]:
    """Read the wanted members of a tar(.gz) in one front-to-back pass over its stream, writing nothing to disk.

    ``select(member_name)`` gives the key a regular-file member is wanted under, or None to skip it, and
    ``read(stream, where)`` turns the member into its value (``where`` names archive and member for errors).
    Two members under one key and a corrupt or truncated archive are errors naming the file; which keys must be
    present is the caller's check. ``what`` names the archive in the error for a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    found: dict[str, _Member] = {}
    try:
        with tarfile.open(path, mode="r|*") as tar:  # "|": a stream; "*": gzip or plain tar
            for member in tar:
                key = select(member.name)
                if key is None or not member.isfile():
                    continue
                if key in found:
                    raise ValueError(f"{path} holds more than one member for {key!r} (the second: {member.name})")
                found[key] = read(tar.extractfile(member), f"{path}:{member.name}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise ValueError(f"cannot read {path}: {error!r} (corrupt or truncated archive)") from error
    return found


def read_europarl_archive(path: str | Path, members: tuple[str, str] = EUROPARL_MEMBERS) -> list[tuple[str, str]]:
    """The de-en pairs of a Europarl v7 tar(.gz), with pairs whose German (source) side is blank dropped.

    The archive is streamed once (:func:`read_tar_members`); only the two members whose names end with
    ``members`` (source, target) are read.
    """
    found = read_tar_members(path, lambda name: next((suffix for suffix in members if name.endswith(suffix)), None),
                             _read_lines, "Europarl archive")
    missing = [suffix for suffix in members if suffix not in found]
    if missing:
        raise ValueError(f"{path} has no member ending {', '.join(map(repr, missing))}")
    src, tgt = (found[suffix] for suffix in members)
    if len(src) != len(tgt):
        raise ValueError(f"{path}: {members[0]} has {len(src)} lines but {members[1]} has {len(tgt)}")
    return [(s, t) for s, t in zip(src, tgt) if s.strip()]


def split_europarl(pairs: Sequence[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """QD's split: the first 90 % of the pairs (rounded down) are ``train``, the rest ``test``; order is kept."""
    train_size = len(pairs) * EUROPARL_TRAIN_PERCENT // 100
    return {"train": list(pairs[:train_size]), "test": list(pairs[train_size:])}


def read_corpus_pairs(name: str, paths: dict[str, str | Path]) -> dict[str, list[tuple[str, str]]]:
    """The raw pairs by split of registered corpus ``name`` from its downloaded files (``paths``: role -> file)."""
    info = corpus_info(name)
    if not info.files:
        raise ValueError(f"corpus {name!r} is generated, not read from files (make_synthetic_translation)")
    missing = [role for role in info.files if role not in paths]
    if missing:
        raise ValueError(f"corpus {name!r} needs files for {', '.join(missing)}; got {', '.join(paths) or 'none'}")
    if name == "wmt13_europarl":
        return split_europarl(read_europarl_archive(paths["archive"]))
    return {split: read_parallel_text(paths[f"{split}_src"], paths[f"{split}_tgt"]) for split in ("train", "test")}


_SEG = re.compile(r"<seg\b[^>]*>(.*?)</seg>", re.DOTALL)
_ENTITY = re.compile(r"&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);")
_ASCII_SPACE = re.compile(r"[ \t\r\n]+")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _unescape(match: re.Match) -> str:
    entity = match.group(1)
    if entity in _NAMED:
        return _NAMED[entity]
    return chr(int(entity[2:], 16) if entity[1] in "xX" else int(entity[1:]))


def parse_sgm(content: bytes, where: str) -> list[str]:
    """The segments of WMT SGML ``content`` (UTF-8 bytes, ``<seg id="..."> ... </seg>``) in document order.

    XML entities (the five named ones and numeric references) are unescaped in one pass, and a bare ``&`` that
    starts no entity is kept as it is (newstest2013 has one). Runs of ASCII whitespace are stripped at the ends
    and collapsed to one space inside, as sacrebleu does, but other whitespace (no-break spaces) is kept, so the
    segments equal the official plain-text files line by line (sacrebleu's ``\\s+`` would turn newstest2013's
    no-break spaces into spaces). sacrebleu does not unescape; newstest2013 holds no entities.
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{where} is not valid UTF-8 ({error})") from error
    segments = [_ASCII_SPACE.sub(" ", _ENTITY.sub(_unescape, raw).strip(" \t\r\n")) for raw in _SEG.findall(text)]
    opened = len(re.findall(r"<seg\b", text))
    if not segments:
        raise ValueError(f"{where} holds no <seg> elements: not a WMT SGML file")
    if opened != len(segments):
        raise ValueError(f"{where}: {opened} <seg> tags but {len(segments)} complete segments (malformed SGML)")
    return segments


def read_sgm(path: str | Path) -> list[str]:
    """The segments of a WMT SGML file, as :func:`parse_sgm` reads them."""
    return parse_sgm(Path(path).read_bytes(), str(path))


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
    save_torch(out_path, payload)
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


# --- synthetic demo corpus --------------------------------------------------------------------------------------

_SRC_LETTERS, _TGT_LETTERS = "abcdefghijklm", "nopqrstuvwxyz"  # disjoint: no word is shared by both sides
_WORD_LETTERS = (3, 7)


def _lexicon(size: int, letters: str, generator: torch.Generator) -> list[str]:
    """``size`` distinct random words of 3 to 7 ``letters``, in order of generation."""
    words: dict[str, None] = {}
    while len(words) < size:
        length = int(torch.randint(_WORD_LETTERS[0], _WORD_LETTERS[1] + 1, (1,), generator=generator))
        word = "".join(letters[i] for i in torch.randint(len(letters), (length,), generator=generator).tolist())
        words.setdefault(word)
    return list(words)


def make_synthetic_translation(
    train_size: int = 20000,
    test_size: int = 1000,
    seed: int = 0,
    vocabulary: int = 200,
    min_length: int = 3,
    max_length: int = 12,
) -> dict[str, list[tuple[str, str]]]:
    """A deterministic toy translation task: ``{"train": pairs, "test": pairs}``.

    The seed fixes two lexicons of ``vocabulary`` distinct made-up lower-case words of 3 to 7 letters, the
    source one over the letters a-m and the target one over n-z; source word ``i`` translates to target word
    ``i`` (a fixed bijection). A source sentence is ``min_length`` to ``max_length`` (uniform) words drawn
    uniformly from the source lexicon; its translation is each word's counterpart, in reverse order. So a
    model must learn a dictionary and a reordering, which a small Transformer or LSTM with attention learns in
    a few epochs. The train and test sentences are drawn independently (a test sentence may also occur in
    training, rarely for lengths >= 3). Uses its own CPU generator: the same arguments give the same pairs.
    """
    if train_size < 1 or test_size < 1:
        raise ValueError("synthetic_translation train_size and test_size must be positive")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"synthetic_translation needs 1 <= min_length <= max_length, got {min_length}, {max_length}")
    if not 2 <= vocabulary <= 100_000:
        raise ValueError(f"synthetic_translation vocabulary must be in [2, 100000], got {vocabulary}")
    generator = torch.Generator().manual_seed(seed)
    source = _lexicon(vocabulary, _SRC_LETTERS, generator)
    target = _lexicon(vocabulary, _TGT_LETTERS, generator)

    def sample(count: int) -> list[tuple[str, str]]:
        lengths = torch.randint(min_length, max_length + 1, (count,), generator=generator).tolist()
        words = torch.randint(vocabulary, (sum(lengths),), generator=generator).tolist()
        pairs, start = [], 0
        for length in lengths:
            sentence = words[start:start + length]
            start += length
            pairs.append((" ".join(source[i] for i in sentence), " ".join(target[i] for i in reversed(sentence))))
        return pairs

    return {"train": sample(train_size), "test": sample(test_size)}
