"""The image and text datasets the teachers train on: their downloads and prepared files (config ``data``).

Jobs: ``download_archive`` (the official archive, md5-checked; a local rule, since compute nodes are often offline)
and ``prepare_dataset`` (``resources/<dataset>/dataset.pt``) for every dataset a teacher trains on. A dataset comes
from its archive, from an already-extracted folder (``data.extracted``, no download) or from a generator (the
synthetic ones, options under ``data.<dataset>``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from compresslib.catalog import DATASETS, GENERATED_DATASETS
from compresslib.experiments.base import Family, Job, Study, alternatives, json_argument

__all__ = ["DownloadArchive", "PrepareDataset", "FAMILY", "dataset_file", "training_examples"]

RESOURCES = "resources/{dataset}"


def dataset_file(dataset: str) -> str:
    """The prepared file of ``dataset``, which every job training on it reads."""
    return PrepareDataset(dataset).outputs()["dataset"]


def training_examples(config: dict, dataset: str) -> int | None:
    """The size of ``dataset``'s training split: its generator's ``train_size`` (``data.<dataset>``), else the
    catalogue's; None where neither says."""
    if dataset in GENERATED_DATASETS:
        return config["data"][dataset]["train_size"]
    split_sizes = DATASETS[dataset].split_sizes
    return split_sizes[0] if split_sizes else None


@dataclass(frozen=True)
class DownloadArchive(Job):
    RULE = "download_archive"
    FOLDER = RESOURCES
    OUTPUTS = {"archive": "archive.tar.gz"}
    LOG = "{dataset}"
    WHAT = "a downloaded dataset"

    dataset: str

    def arguments(self, study: Study) -> str:
        mirror = study.config["data"]["mirror"]
        return f"--mirror {shlex.quote(mirror)}" if mirror else ""

    def unplanned_problem(self, study: Study) -> str | None:
        if PrepareDataset(self.dataset).downloaded(study):
            return None
        return f"{self.folder()}: {self.dataset} is generated or read from data.extracted, not downloaded"


@dataclass(frozen=True)
class PrepareDataset(Job):
    RULE = "prepare_dataset"
    FOLDER = RESOURCES
    OUTPUTS = {"dataset": "dataset.pt"}
    LOG = "{dataset}"
    WHAT = "a dataset a teacher trains on"

    dataset: str

    def downloaded(self, study: Study) -> bool:
        return self.dataset not in GENERATED_DATASETS and self.dataset not in study.config["data"]["extracted"]

    def inputs(self, study: Study) -> dict[str, Any]:
        return DownloadArchive(self.dataset).outputs() if self.downloaded(study) else {}

    def unplanned_problem(self, study: Study) -> str | None:
        return None  # every dataset the rule's wildcard allows (a teacher's, or one of data.extracted)

    def arguments(self, study: Study) -> str:
        """Where the dataset comes from: its generator's options, an extracted folder, or the archive."""
        data = study.config["data"]
        if self.dataset in GENERATED_DATASETS:
            return f"--synthetic {json_argument(data[self.dataset])}"
        if self.dataset in data["extracted"]:
            verify = "" if data["verify_checksums"] else " --no-verify"
            return f"--extracted {shlex.quote(data['extracted'][self.dataset])}{verify}"
        return f"--archive {shlex.quote(DownloadArchive(self.dataset).outputs()['archive'])}"


def check(config: dict) -> list[str]:
    downloadable = [dataset for dataset in DATASETS if dataset not in GENERATED_DATASETS]
    return [f"data.extracted.{dataset}: not a downloadable dataset; allowed: {', '.join(downloadable)}"
            for dataset in config["data"]["extracted"] if dataset not in downloadable]


def jobs(study: Study) -> list[Job]:
    datasets = dict.fromkeys(teacher["dataset"] for teacher in study.config["teachers"].values())
    planned: list[Job] = []
    for dataset in datasets:
        prepare = PrepareDataset(dataset)
        planned += [DownloadArchive(dataset)] if prepare.downloaded(study) else []
        planned.append(prepare)
    return planned


def wildcards(config: dict) -> dict[str, str]:
    datasets = {teacher["dataset"] for teacher in config["teachers"].values()} | set(config["data"]["extracted"])
    return {"dataset": alternatives(datasets)}


FAMILY = Family(name="data", check=check, jobs=jobs, wildcards=wildcards)
