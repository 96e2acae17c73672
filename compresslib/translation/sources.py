"""Where translation corpora and extra test sets come from, and building a prepared corpus from those files.

Downloads. The corpora of ``corpus.CORPORA`` that are read from files (:func:`corpus_downloads`) publish no
checksum, so their :class:`~compresslib.data.download.Archive` has ``md5=None`` and the fetch records size and
digests instead. The extra test sets (``TEST_SETS``) are taken from sacrebleu's own dataset registry, so URL,
md5 and member paths have one source of truth (as ``compresslib.data.download`` takes CIFAR's from torchvision):
``newstest2013`` is sacrebleu's ``wmt13``, ``https://statmt.org/wmt13/test.tgz``, whose md5 *is* checked.
:func:`downloads` lists every downloadable file by source and official file name, the layout of the workflow's
``resources/<source>/downloads/<filename>``.

Test sets. :func:`read_test_set` gives the (source, reference) pairs of a test set for a language pair, read
either straight out of its archive (streamed; only the pair's two members, by exact path) or from local copies
(``.sgm`` files as WMT SGML, anything else as plain UTF-8 lines). sacrebleu's ``wmt13`` scores de-en against
``newstest2013-src.en.sgm``, whose segments equal the official ``newstest2013.en`` line for line.

Building. :func:`build_corpus` is what ``workflow_scripts/prepare_corpus.py`` runs: it checks every input
(roles, files, options, test sets and their languages, download records, settings) before reading any text,
reads the corpus (or generates the synthetic one), adds each test set as a split named after it (training
translates and scores every split but ``train`` and ``valid``), and writes the prepared corpus
(``corpus.prepare_corpus``, atomic). Its ``provenance`` entry is::

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
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from sacrebleu.dataset import DATASETS as SACREBLEU_DATASETS

from compresslib.data.archive import Archive
from compresslib.io import sha256_file
from compresslib.translation.corpus import (
    CORPORA,
    check_corpus_settings,
    corpus_info,
    make_synthetic_translation,
    parse_sgm,
    prepare_corpus,
    read_corpus_pairs,
    read_lines,
    read_sgm,
    read_tar_members,
)

__all__ = [
    "TestSet",
    "TEST_SETS",
    "corpus_downloads",
    "test_set_download",
    "test_set_language_pairs",
    "test_set_members",
    "downloads",
    "source_archive",
    "read_test_set",
    "build_corpus",
]

logger = logging.getLogger(__name__)

_RECORD_KEYS = ("source", "filename", "md5", "sha256", "bytes")  # what a download.py --record must hold


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


def _test_set(name: str) -> TestSet:
    if name not in TEST_SETS:
        raise ValueError(f"unknown test set {name!r}; known test sets: {', '.join(TEST_SETS)}")
    return TEST_SETS[name]


def test_set_download(name: str) -> Archive:
    """The archive of test set ``name`` (file name, URL and md5 as sacrebleu has them)."""
    return _test_set(name).archive


def test_set_language_pairs(name: str) -> list[tuple[str, str]]:
    """The (source language, target language) pairs test set ``name`` has, e.g. ``("de", "en")``."""
    return list(_test_set(name).members)


def test_set_members(name: str, src_lang: str, tgt_lang: str) -> tuple[str, str]:
    """The archive members (source, reference) of test set ``name`` for ``src_lang`` -> ``tgt_lang``."""
    test_set = _test_set(name)
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
        if not path.is_file():
            raise FileNotFoundError(f"download record {path} does not exist")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"download record {path} is not JSON ({error})") from error
        if not isinstance(record, dict) or any(key not in record for key in _RECORD_KEYS):
            raise ValueError(f"download record {path} must be a JSON object with {', '.join(_RECORD_KEYS)} "
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
    Returns the corpus as written (``corpus.prepare_corpus``); the provenance layout is in the module docstring.
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
        _test_set(test_set)
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
