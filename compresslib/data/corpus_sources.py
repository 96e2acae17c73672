"""Where translation corpora and test sets come from (their downloads), and reading their raw text.

Corpora (reference/seeds.md §1.7, §2.6; QD's and LMA's ``-data integ`` and ``-data wmt``):

- ``onmt_integration``: OpenNMT's "integration test" data, already clean, de→en. The 200 K training pairs
  ``{de,en}-train-clean.200K.txt`` are the training set and the 10 K validation pairs
  ``{de,en}-val-clean.10K.txt`` are used **as the test set**, as QD and LMA did.
- ``wmt13_europarl``: "WMT13 DE-EN", which is Europarl v7 only (``training-parallel-europarl-v7.tgz``, about
  600 MB). Only the members ending ``europarl-v7.de-en.de`` and ``europarl-v7.de-en.en`` are read, streamed
  out of the gzip stream (:func:`read_europarl_archive`); nothing is extracted. Pairs whose German side is
  blank are dropped, then the first 90 % of the remaining pairs are the training set and the last 10 % the
  test set (:func:`split_europarl`, QD's split). There is no newstest in this recipe.

Downloads. The corpora of ``compresslib.catalog.CORPORA`` that are read from files (:func:`corpus_downloads`) publish no
checksum, so their :class:`~compresslib.data.archive.Archive` has ``md5=None`` and the fetch records size and
digests instead. The extra test sets (``TEST_SETS``) are taken from sacrebleu's own dataset registry, so URL,
md5 and member paths have one source of truth (as ``compresslib.data.download`` takes CIFAR's from torchvision):
``newstest2013`` is sacrebleu's ``wmt13``, ``https://statmt.org/wmt13/test.tgz``, whose md5 *is* checked.
:func:`downloads` lists every downloadable file by source and official file name, the layout of the workflow's
``resources/<source>/downloads/<filename>``.

Test sets. :func:`read_test_set` gives the (source, reference) pairs of a test set for a language pair, read
either straight out of its archive (streamed; only the pair's two members, by exact path) or from local copies
(``.sgm`` files as WMT SGML, anything else as plain UTF-8 lines). sacrebleu's ``wmt13`` scores de-en against
``newstest2013-src.en.sgm``, whose segments equal the official ``newstest2013.en`` line for line.

Neither corpus publishes checksums: the download layer records each file's size and sha256 in the provenance
instead of verifying them. The readers here read files that are already on disk (``compresslib.data.corpus``
builds the prepared corpus from them). This module needs no torch: the workflow's start-up lists the downloads.
"""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TypeVar
from urllib.parse import urlsplit

from sacrebleu.dataset import DATASETS as SACREBLEU_DATASETS

from compresslib.catalog import CORPORA, corpus_info
from compresslib.data.archive import Archive

__all__ = ["TestSet", "TEST_SETS", "corpus_downloads", "get_test_set", "test_set_download", "test_set_language_pairs",
           "test_set_members", "downloads", "source_archive", "read_lines", "read_parallel_text", "read_tar_members",
           "read_europarl_archive", "split_europarl", "read_corpus_pairs", "parse_sgm", "read_sgm", "read_test_set"]

EUROPARL_MEMBERS = ("europarl-v7.de-en.de", "europarl-v7.de-en.en")  # (src, tgt): German -> English
EUROPARL_TRAIN_PERCENT = 90


# --- downloads --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TestSet:
    name: str
    sacrebleu: str  # the sacrebleu dataset it is taken from
    archive: Archive
    members: dict[tuple[str, str], tuple[str, str]]  # (src_lang, tgt_lang) -> (source member, reference member)
    description: str = ""


def _url_filename(url: str) -> str:
    return PurePosixPath(urlsplit(url).path).name


def _from_sacrebleu(name: str, sacrebleu: str, description: str) -> TestSet:
    dataset = SACREBLEU_DATASETS[sacrebleu]
    url = dataset.data[0]
    members = {tuple(pair.split("-")): (files[0], files[1]) for pair, files in dataset.langpairs.items()}
    return TestSet(name, sacrebleu, Archive(_url_filename(url), url, dataset.md5[0]), members, description)


TEST_SETS: dict[str, TestSet] = {
    "newstest2013": _from_sacrebleu("newstest2013", "wmt13", "WMT13 news test set, 3000 sentences (sacrebleu wmt13)"),
}


def corpus_downloads(name: str) -> dict[str, Archive]:
    """Role -> Archive of the files of corpus ``name`` (official URLs; no md5 is published for them)."""
    downloadable = [corpus for corpus, info in CORPORA.items() if info.files]
    if name not in downloadable:
        what = "is generated, not downloaded" if name in CORPORA else "is not a known corpus"
        raise ValueError(f"corpus {name!r} {what}; corpora with files to download: {', '.join(downloadable)}")
    return {role: Archive(_url_filename(url), url, None) for role, url in CORPORA[name].files.items()}


def get_test_set(name: str) -> TestSet:
    """The registry entry of test set ``name``; an unknown name is an error listing the known ones."""
    if name not in TEST_SETS:
        raise ValueError(f"unknown test set {name!r}; known test sets: {', '.join(TEST_SETS)}")
    return TEST_SETS[name]


def test_set_download(name: str) -> Archive:
    """The archive of test set ``name`` (file name, URL and md5 as sacrebleu has them)."""
    return get_test_set(name).archive


def test_set_language_pairs(name: str) -> list[tuple[str, str]]:
    """The (source language, target language) pairs test set ``name`` has, e.g. ``("de", "en")``."""
    return list(get_test_set(name).members)


def test_set_members(name: str, src_lang: str, tgt_lang: str) -> tuple[str, str]:
    """The archive members (source, reference) of test set ``name`` for ``src_lang`` -> ``tgt_lang``."""
    test_set = get_test_set(name)
    if (src_lang, tgt_lang) not in test_set.members:
        raise ValueError(f"test set {name} has no {src_lang}-{tgt_lang} language pair; it has "
                         f"{', '.join('-'.join(pair) for pair in test_set.members)}")
    return test_set.members[(src_lang, tgt_lang)]


def downloads() -> dict[str, dict[str, Archive]]:
    """Every downloadable translation source (corpora with files, test sets) -> {official file name: Archive}."""
    archives = {name: list(corpus_downloads(name).values()) for name, info in CORPORA.items() if info.files}
    archives |= {name: [test_set.archive] for name, test_set in TEST_SETS.items()}
    return {source: {archive.filename: archive for archive in listed} for source, listed in archives.items()}


def source_archive(source: str, filename: str) -> Archive:
    """The Archive of ``filename`` of translation source ``source``; unknown ones are errors listing the allowed."""
    available = downloads()
    if source not in available:
        raise ValueError(f"unknown translation source {source!r}; sources with downloads: {', '.join(available)}")
    if filename not in available[source]:
        raise ValueError(f"{source} has no download named {filename!r}; its files: {', '.join(available[source])}")
    return available[source][filename]


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


# --- test sets --------------------------------------------------------------------------------------------------

def _read_segments(path: Path) -> list[str]:
    return read_sgm(path) if path.suffix == ".sgm" else read_lines(path)


def read_test_set(
    name: str,
    src_lang: str,
    tgt_lang: str,
    *,
    archive: str | Path | None = None,
    src: str | Path | None = None,
    ref: str | Path | None = None,
) -> list[tuple[str, str]]:
    """The (source, reference) pairs of test set ``name`` for ``src_lang`` -> ``tgt_lang``, in document order.

    Read from its ``archive`` (the two members of the pair, by exact path, streamed; nothing is extracted) or
    from the local files ``src`` and ``ref`` (``.sgm``: WMT SGML; otherwise plain UTF-8, one segment a line).
    A pair the test set lacks, a missing member, sides of unequal length and an empty set are errors naming
    the file or member.
    """
    members = test_set_members(name, src_lang, tgt_lang)
    if archive is not None and src is None and ref is None:
        roles = dict(zip(members, ("src", "ref")))
        found = read_tar_members(archive, roles.get, lambda stream, where: parse_sgm(stream.read(), where),
                                 f"{name} archive")
        missing = [member for member, role in roles.items() if role not in found]
        if missing:
            raise ValueError(f"{archive} has no member {', '.join(missing)}: not the {name} archive")
        sides, labels = [found["src"], found["ref"]], [f"{archive}:{member}" for member in members]
    elif archive is None and src is not None and ref is not None:
        sides, labels = [_read_segments(Path(src)), _read_segments(Path(ref))], [str(src), str(ref)]
    else:
        raise ValueError(f"read_test_set({name!r}) takes either archive or both src and ref")
    if len(sides[0]) != len(sides[1]):
        raise ValueError(f"test set {name}: {labels[0]} has {len(sides[0])} segments but {labels[1]} has "
                         f"{len(sides[1])}")
    if not sides[0]:
        raise ValueError(f"test set {name}: {labels[0]} holds no segments")
    return list(zip(*sides))
