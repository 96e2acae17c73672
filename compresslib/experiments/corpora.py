"""Translation corpora (config ``translation.corpora``, ``translation.test_sets``): downloads and prepared corpora.

Jobs: ``download_translation_file`` (a corpus's raw file or an extra test set's archive, under its official name in
``resources/<source>/downloads/``, with a record of its size and checksums; a local rule) and ``prepare_corpus``
(``resources/<corpus>/corpus.pt``: SentencePiece per side, ids, raw text) for every corpus a translation teacher
trains on. A file given as a local copy in the config is read from there instead of downloaded; the generated
corpus (``synthetic_translation``) takes its options from ``synthetic``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from compresslib.catalog import CORPORA
from compresslib.data.corpus_sources import corpus_downloads, downloads, test_set_download, \
    test_set_language_pairs
from compresslib.experiments.base import Family, Job, Study, alternatives, json_argument

__all__ = ["DownloadTranslationFile", "PrepareCorpus", "corpus_file", "FAMILY"]


def corpus_file(corpus: str) -> str:
    """The prepared file of ``corpus``, which every translation job on it reads."""
    return PrepareCorpus(corpus).outputs()["corpus"]


@dataclass(frozen=True)
class DownloadTranslationFile(Job):
    RULE = "download_translation_file"
    FOLDER = "resources/{source}/downloads"
    OUTPUTS = {"file": "{filename}", "record": "{filename}.json"}  # the file, and its size and checksums
    LOG = "{source}/{filename}"
    WHAT = "a download of any prepared corpus"

    source: str  # a corpus or an extra test set
    filename: str  # its official file name

    def arguments(self, study: Study) -> str:
        mirror = study.config["data"]["mirror"]
        return f"--mirror {shlex.quote(mirror)}" if mirror else ""

    def unplanned_problem(self, study: Study) -> str | None:
        return None if self.filename in downloads().get(self.source, {}) else super().unplanned_problem(study)

    def file(self) -> str:
        return self.outputs()["file"]


@dataclass(frozen=True)
class PrepareCorpus(Job):
    RULE = "prepare_corpus"
    FOLDER = "resources/{corpus}"
    OUTPUTS = {"corpus": "corpus.pt"}
    LOG = "{corpus}"
    WHAT = "a corpus a translation teacher trains on"

    corpus: str

    def sources(self, study: Study) -> tuple[dict, dict, list[DownloadTranslationFile]]:
        """Where the corpus's raw files and extra test sets come from: ({role: path}, {test set: {src, ref} or
        {archive}}, the downloads among them): local copies named in the config, or else the download jobs."""
        translation = study.config["translation"]
        entry = translation["corpora"][self.corpus]
        files, downloads = dict(entry["files"]), []
        if not files and CORPORA[self.corpus].files:
            fetched = {role: DownloadTranslationFile(self.corpus, archive.filename)
                       for role, archive in corpus_downloads(self.corpus).items()}
            files, downloads = {role: job.file() for role, job in fetched.items()}, list(fetched.values())
        test_sets = {}
        for name in entry["test_sets"]:
            if name in translation["test_sets"]:
                test_sets[name] = dict(translation["test_sets"][name])
            else:
                download = DownloadTranslationFile(name, test_set_download(name).filename)
                test_sets[name] = {"archive": download.file()}
                downloads.append(download)
        return files, test_sets, downloads

    def inputs(self, study: Study) -> dict[str, Any]:
        """Every downloaded file the corpus reads, with its download record."""
        downloads = self.sources(study)[2]
        return {"downloads": [job.file() for job in downloads], "records": [job.outputs()["record"]
                                                                            for job in downloads]}

    def arguments(self, study: Study) -> str:
        entry = study.config["translation"]["corpora"][self.corpus]
        files, test_sets, downloads = self.sources(study)
        records = [job.outputs()["record"] for job in downloads]
        arguments = [f"--vocab-size {entry['vocab_size']}", f"--max-length {entry['max_length']}",
                     f"--model-type {entry['model_type']}", "" if entry["lowercase"] else "--cased",
                     f"--files {json_argument(files)}" if CORPORA[self.corpus].files
                     else f"--synthetic {json_argument(entry['synthetic'] or {})}",
                     f"--test-sets {json_argument(test_sets)}" if test_sets else "",
                     f"--download-records {' '.join(map(shlex.quote, records))}" if records else ""]
        return " ".join(filter(None, arguments))


def check(config: dict) -> list[str]:
    problems = []
    for name, corpus in config["translation"]["corpora"].items():
        where, info = f"translation.corpora.{name}", CORPORA[name]
        generated = not info.files
        if generated and corpus["files"]:
            problems.append(f"{where}.files: {name} is generated, not read from files; leave files out")
        if not generated and corpus["synthetic"] is not None:
            problems.append(f"{where}.synthetic: only synthetic_translation is generated; {name} is downloaded")
        roles = sorted(info.files)
        if corpus["files"] and sorted(corpus["files"]) != roles:
            problems.append(f"{where}.files: give every file of {name} ({', '.join(roles)}), got "
                            f"{', '.join(sorted(corpus['files']))}")
        for index, test_set in enumerate(corpus["test_sets"]):
            pairs = test_set_language_pairs(test_set)
            if (info.src_lang, info.tgt_lang) not in pairs:
                problems.append(f"{where}.test_sets[{index}]: {test_set} has no {info.src_lang}-{info.tgt_lang} pair "
                                f"(it has {', '.join('-'.join(pair) for pair in pairs)}), the languages of {name}")
    return problems


def jobs(study: Study) -> list[Job]:
    """The downloads and preparation of every corpus a translation teacher trains on."""
    teachers = study.config["translation"]["teachers"]
    corpora = [PrepareCorpus(corpus) for corpus in dict.fromkeys(entry["corpus"] for entry in teachers.values())]
    return [*dict.fromkeys(job for corpus in corpora for job in corpus.sources(study)[2]), *corpora]


def wildcards(config: dict) -> dict[str, str]:
    teachers = config["translation"]["teachers"]
    available = downloads()  # every downloadable translation source and its files
    return {"corpus": alternatives({entry["corpus"] for entry in teachers.values()}),
            "source": alternatives(available), "filename": alternatives({name for files in available.values()
                                                                        for name in files})}


FAMILY = Family(name="corpora", check=check, jobs=jobs, wildcards=wildcards)
