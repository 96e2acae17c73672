"""The Snakemake workflow: the paper DAG, lint, wildcard routing, offline data paths, the demo end to end, reruns."""

from __future__ import annotations

import copy
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from compresslib import experiments
from compresslib.models import load_model
from compresslib.quantization.pack import load_packed
from conftest import REPO, SNAKEMAKE, run_snakemake

JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (?P<rule>\w+):$")
DEMO_CONFIG = yaml.safe_load((REPO / "profiles/demo/config.yaml").read_text())


def dry_run_jobs(*args: str) -> list[tuple[str, dict, frozenset]]:
    """(rule, wildcards, outputs) of every job a dry run would execute, in its order (`all` has no outputs)."""
    return listed_jobs(run_snakemake("--dry-run", *args).stdout)


def listed_jobs(output: str) -> list[tuple[str, dict, frozenset]]:
    """(rule, wildcards, outputs) of every job a dry run's output lists, in its order."""
    jobs = []
    for line in map(str.strip, output.splitlines()):
        header = JOB_HEADER.match(line)
        if header:
            jobs.append((header["rule"], {}, set()))
        elif jobs and line.startswith("wildcards:"):
            jobs[-1][1].update(pair.strip().split("=", 1) for pair in line.removeprefix("wildcards:").split(", "))
        elif jobs and line.startswith("output:"):
            jobs[-1][2].update(line.removeprefix("output:").strip().split(", "))
    return [(rule, wildcards, frozenset(outputs)) for rule, wildcards, outputs in jobs]


def planned_jobs(*args: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run would execute."""
    return [(rule, wildcards) for rule, wildcards, _ in dry_run_jobs(*args)]


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, dict, frozenset]]:
    """The jobs of the paper's DAG (config.yaml) in an empty folder: one dry run shared by the tests that read it."""
    return dry_run_jobs("--configfile", str(REPO / "config.yaml"), "--directory", str(tmp_path_factory.mktemp("paper")))


def test_paper_dag_job_counts(paper_dry_run: list[tuple[str, dict, frozenset]]):
    counts = Counter(rule for rule, _, _ in paper_dry_run)
    assert counts == {"download_archive": 3, "prepare_dataset": 3,
                      # LMA/QD's 2, LIT's 3, ESNAC's 4 networks x 2 datasets searched (45K) and reported (50K)
                      "train_teacher": 5 + 16,
                      # the teachers whose students' KD logits are cached (teacher_outputs: auto): conv-teacher,
                      # WRN-16-10 and ResNet-110 (its KD baselines: 3 x 300 epochs > 162 views)
                      "teacher_views": 3,
                      # ESNAC: 4 teachers x 2 datasets x {esnac, random} x seed 127; the full trainings of their
                      # top 4 join the DAG once each search has finished (a checkpoint)
                      "esnac_search": 16, "esnac_collect": 16,
                      # CIFAR-10: 3 students x 5 activations x 5 seeds; bins ablation adds 3 x 8 new tags x 5;
                      # CIFAR-100: 2 students x 5 activations x 5 seeds; QD's 3 students x 3 seeds (relu);
                      # LIT's KD baselines: ResNet-20 x 3 seeds, VDCNN-9 and VDCNN-17 x 1
                      "distill_student": 75 + 120 + 50 + 9 + 5, "train_undistilled": 9 + 5,
                      "lit_train": 5,
                      # QD 18 + 2 (CIFAR-100) + 60 (LMA joint); DQ 9 + 9 + 2
                      "quantize_train": 80 + 20,
                      # PM with buckets 18 + 2 (CIFAR-100), without buckets 18
                      "quantize_post_training": 38,
                      # translation: the integration corpus's 4 files, Europarl's archive, newstest2013's archive;
                      # LMA: 3 + 2 students x 5 activations x 5 seeds; QD: 3 x 6 (integration), 3 (WMT13)
                      "download_translation_file": 6, "prepare_corpus": 2, "train_translation_teacher": 4,
                      "translate_training_split": 1, "train_translation_student": 75 + 50 + 18 + 3,
                      "aggregate": 1, "report_pages": 1, "all": 1}


def scheduled_jobs(jobs: list[tuple[str, dict, frozenset]]) -> Counter:
    """(rule, its outputs) of the dry run's jobs, `all` (which has no outputs), `aggregate` and `report_pages` aside."""
    return Counter((rule, outputs) for rule, _, outputs in jobs
                   if outputs and rule not in ("aggregate", "report_pages"))


def jobs_compresslib_plans(config: Path) -> Counter:
    """(rule, its outputs) of every job compresslib plans for a config, the jobs that join the DAG only after a
    checkpoint (ESNAC's full trainings) aside."""
    study = experiments.load_config(config, REPO / "rules/schemas/config.schema.yaml")
    return Counter((job.rule, frozenset(job.outputs().values())) for job in study.jobs if job.checkpoint() is None)


# the tables every config's aggregation writes (one per family, whatever the config asks for)
TABLES = {f"results/tables/{name}" for name in (
    "runs.csv", *(f"runs-{kind}.csv" for kind in ("teacher", "distill", "undistilled", "quantize", "lit", "esnac",
                                                  "translation")),
    "summary-teachers.csv", "summary-distill.csv", "seeds-distill-best.csv", "seeds-distill-final.csv",
    "seeds-distill.md", "summary-quantize.csv", "summary-quantize.md", "summary-lit.csv", "summary-lit.md",
    "summary-esnac.csv", "summary-esnac.md", "summary-translation.csv", "summary-translation.md",
    *(f"paired-{family}.{suffix}" for family in ("distill", "quantize", "lit", "esnac", "translation")
      for suffix in ("csv", "md")),
    *(f"pareto-{family}.{suffix}" for family in ("quantize", "translation") for suffix in ("csv", "md")))}
# a few plots of each config's experiments
PLOTS = {None: {"teachers.png", "distill/lma-cifar10/conv-s0.png", "distill/lma-cifar100/wrn10-2.png",
                "quantize/qd-cifar10.png", "accuracy-vs-size/cifar100.png", "lit/lit-vdcnn17-to-9/seed1.png",
                "esnac/esnac-cifar100/esnac-shufflenet-c100.png", "translation/qd-wmt.png",
                "bleu-vs-size/wmt13_europarl.png"},
         "profiles/demo": {"teachers.png", "distill/demo/demo-s0.png", "distill/demo/demo-s1.png",
                           "quantize/demo-quant.png", "accuracy-vs-size/synthetic.png", "lit/demo-lit/seed1.png",
                           "esnac/demo-esnac/demo-esnac-teacher.png", "translation/demo-qd-nmt.png",
                           "bleu-vs-size/synthetic_translation.png"}}


@pytest.mark.parametrize("profile", [None, "profiles/demo"])
def test_the_dry_run_schedules_exactly_the_jobs_compresslib_plans(profile: str | None, tmp_path: Path,
                                                                  request: pytest.FixtureRequest):
    """One expansion of the DAG: the rules run the jobs compresslib.experiments plans, job by job."""
    config = REPO / ("profiles/demo/config.yaml" if profile else "config.yaml")
    if profile is None:
        jobs = request.getfixturevalue("paper_dry_run")
    else:
        jobs = dry_run_jobs("--workflow-profile", profile, "--directory", str(tmp_path))
    scheduled = scheduled_jobs(jobs)
    assert scheduled == jobs_compresslib_plans(config)
    assert sum(scheduled.values()) == (637 if profile is None else 75)  # every job but `all` and the aggregation's
    # the aggregation, once, after every run: the tables, and the plots of the config's experiments; then the report's
    # pages, one per table (its Markdown's, or its CSV's where it has none) and the front page
    aggregate = [outputs for rule, _, outputs in jobs if rule == "aggregate"]
    assert len(aggregate) == 1 and [rule for rule, _, _ in jobs][-3:] == ["aggregate", "report_pages", "all"]
    (pages,) = [outputs for rule, _, outputs in jobs if rule == "report_pages"]
    assert pages == {"results/report/study.rst"} | {
        f"results/report/tables/{Path(path).stem}.html" for path in TABLES
        if path.endswith(".md") or path.removesuffix(".csv") + ".md" not in TABLES}
    assert {path for path in aggregate[0] if path.startswith("results/tables/")} == TABLES
    assert {f"results/plots/{name}" for name in PLOTS[profile]} <= aggregate[0] <= TABLES | {
        path for path in aggregate[0] if path.startswith("results/plots/") and path.endswith(".png")}


def test_jobs_that_many_others_wait_for_start_first(tmp_path: Path):
    """A job's Snakemake priority is how many planned jobs read its outputs, directly or through others: the demo's
    main teacher (its students, their quantized runs and aggregation wait for it) comes before every other teacher."""
    output = run_snakemake("--dry-run", "--workflow-profile", "profiles/demo", "--directory", str(tmp_path)).stdout
    priority = {}
    for block in output.split("\n\n"):
        job = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):\n", block, re.M)
        if job:
            wildcards = re.search(r"^    wildcards: (.*)$", block, re.M)
            number = re.search(r"^    priority: (\d+)$", block, re.M)
            priority[job[1], wildcards[1] if wildcards else ""] = int(number[1]) if number else 0
    study = experiments.load_config(REPO / "profiles/demo/config.yaml", REPO / "rules/schemas/config.schema.yaml")
    planned = {(job.rule, ", ".join(f"{key}={value}" for key, value in job.wildcards().items())): job
               for job in study.jobs}
    scheduled = [key for key in priority if key in planned]
    assert len(scheduled) > 60 and all(priority[key] == study.dependents(planned[key]) for key in scheduled)
    teachers = {wildcards: number for (rule, wildcards), number in priority.items() if rule == "train_teacher"}
    main = "dataset=synthetic, teacher=demo-teacher, seed=1"
    assert teachers[main] == 44 and max(number for wildcards, number in teachers.items() if wildcards != main) < 10
    assert max(number for (rule, _), number in priority.items() if rule == "distill_student") < teachers[main]


def test_a_study_file_replaces_config_yaml_and_config_values_go_on_top(tmp_path: Path):
    """`--configfile my-study.yaml` runs exactly that study: config.yaml, the default study, is not merged in.
    `--config key=value` changes a value of either."""
    study = {"data": {"synthetic": {"train_size": 1000, "test_size": 200, "seed": 0}},
             "teachers": {"t": {"dataset": "synthetic", "model": "demo_conv_teacher", "train": {"epochs": 2}}},
             "students": {"s": {"model": "demo_conv_student0", "train": {"epochs": 2}, "kd": {"temperature": 2.0}}},
             "distill": {"mine": {"teacher": "t", "students": ["s"], "activations": ["relu", "lma8"], "seeds": [1]}}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    mine = Counter({"prepare_dataset": 1, "train_teacher": 1, "distill_student": 2, "aggregate": 1, "report_pages": 1,
                    "all": 1})
    named = ("--configfile", str(tmp_path / "study.yaml"), "--directory", str(tmp_path / "run"))
    assert Counter(rule for rule, _ in planned_jobs(*named)) == mine
    # the teacher's logits cached for its students: one job more
    cached = Counter(rule for rule, _ in planned_jobs(*named, "--config", "teacher_outputs=cached"))
    assert cached == mine + Counter({"teacher_views": 1})
    # without --configfile, the working directory's config.yaml is the study
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(study))
    assert Counter(rule for rule, _ in planned_jobs("--directory", str(tmp_path / "run"))) == mine


HEAVY_LIBRARIES = ("torch", "pandas", "scipy", "matplotlib")


def _heavy_imports(*code: str) -> set[str]:
    """Which of the heavy libraries a fresh interpreter has imported once ``code`` has run (also when it exits)."""
    report = f"print('HEAVY', *sorted(set({HEAVY_LIBRARIES!r}) & set(sys.modules)), file=sys.stderr)"
    process = subprocess.run([sys.executable, "-c", "\n".join(
        ["import atexit, sys", f"atexit.register(lambda: {report})", *code])], cwd=REPO, capture_output=True, text=True)
    assert process.returncode == 0, process.stderr[-2000:]
    return set(process.stderr.splitlines()[-1].split()[1:])


def test_the_experiments_and_a_dry_run_import_no_heavy_library(tmp_path: Path):
    assert _heavy_imports("import compresslib.experiments") == set()
    snakemake = ["from snakemake.cli import main", "sys.argv = ['snakemake', *{}]", "main()"]
    startup = _heavy_imports(*snakemake[:1], snakemake[1].format("['--help']"), snakemake[2])
    arguments = ["-n", "-q", "--configfile", str(REPO / "config.yaml"), "--directory", str(tmp_path)]
    dry_run = _heavy_imports(*snakemake[:1], snakemake[1].format(arguments), snakemake[2])
    # snakemake-executor-plugin-slurm imports pandas when Snakemake starts, whatever the command: nothing more loads
    assert startup <= {"pandas"} and dry_run == startup


def test_lint_is_clean():
    process = run_snakemake("--lint")
    assert "Congratulations, your workflow is in a good condition!" in process.stdout + process.stderr


def test_wildcards_route_each_path_to_one_rule():
    jobs = planned_jobs("results/distill/cifar10/conv-teacher/conv-s2/aplu12/seed4/record.json")
    student = [w for rule, w in jobs if rule == "distill_student"]
    assert student == [{"dataset": "cifar10", "teacher": "conv-teacher", "student": "conv-s2",
                        "activation": "aplu12", "seed": "4"}]
    assert [w for rule, w in jobs if rule == "train_teacher"] == [{"dataset": "cifar10", "teacher": "conv-teacher",
                                                                    "seed": "1"}]
    relu = planned_jobs("results/distill/cifar100/wrn16-10/wrn10-2/relu/seed1/record.json")
    assert ("distill_student", {"dataset": "cifar100", "teacher": "wrn16-10", "student": "wrn10-2",
                                "activation": "relu", "seed": "1"}) in relu
    dq = planned_jobs("results/quantize/cifar10/conv-teacher/qd-s1/dq-b2-k256/relu/seed2/record.json")
    assert Counter(rule for rule, _ in dq)["quantize_train"] == 1
    # DQ learns the points of the distilled student of the same run
    assert [w for rule, w in dq if rule == "distill_student"] == [{
        "dataset": "cifar10", "teacher": "conv-teacher", "student": "qd-s1", "activation": "relu", "seed": "2"}]
    pm = planned_jobs("results/quantize/cifar10/conv-teacher/qd-s0/pm-b4-knone/relu/seed3/record.json")
    assert ("quantize_post_training", {"dataset": "cifar10", "teacher": "conv-teacher", "student": "qd-s0",
                                       "method": "pm", "bits": "4", "bucket": "none", "activation": "relu",
                                       "seed": "3"}) in pm
    # a student run no experiment asks for is defined by the config's entries alone, so it runs when asked for
    extra = planned_jobs("results/distill/cifar10/conv-teacher/conv-s2/relu/seed9/record.json")
    assert ("distill_student", {"dataset": "cifar10", "teacher": "conv-teacher", "student": "conv-s2",
                                "activation": "relu", "seed": "9"}) in extra
    # a path no quantize experiment asks for is refused with its name
    stray = run_snakemake("--dry-run", "results/quantize/cifar10/conv-teacher/qd-s0/qd-b3-k256/relu/seed1/record.json",
                          check=False)
    assert stray.returncode != 0 and "is not a run of any quantize experiment" in stray.stdout + stray.stderr
    # a student name in the teacher position matches no rule
    missing = run_snakemake("--dry-run", "results/teachers/cifar10/conv-s0/seed1/record.json", check=False)
    assert missing.returncode != 0 and "MissingRuleException" in missing.stdout + missing.stderr


def test_students_of_a_cached_teacher_read_its_views_file():
    shell = run_snakemake("-n", "-p", "results/distill/cifar10/conv-teacher/conv-s2/aplu12/seed4/record.json",
                          "results/quantize/cifar10/conv-teacher/qd-s1/qd-b2-k256/relu/seed2/record.json",
                          "results/quantize/cifar10/conv-teacher/qd-s1/dq-b2-k256/relu/seed2/record.json").stdout
    views = "results/teachers/cifar10/conv-teacher/seed1/views.pt"
    assert "teacher_views.py --teacher results/teachers/cifar10/conv-teacher/seed1/model.pt" in shell
    commands = {match["run"]: match["command"] for match in re.finditer(
        r"--run-dir results/(?P<run>\S+) (?P<command>.*)", shell)}
    students = [run for run in commands if run.startswith(("distill/", "quantize/"))]
    assert len(students) == 4  # the aplu12 student, QD, DQ and the distilled student DQ starts from
    for run in students:
        cached = "dq-b2" not in run  # DQ's teacher is the distilled student itself
        assert (f"--teacher-views {views}" in commands[run]) == cached, run
        assert ("teacher_outputs=\"cached\"" in commands[run]) == cached, run
    jobs = planned_jobs("results/distill/cifar10/conv-teacher/conv-s2/aplu12/seed4/record.json", "--config",
                        "teacher_outputs=online")
    assert "teacher_views" not in {rule for rule, _ in jobs}


def test_esnac_search_paths_route_to_the_checkpoint_and_its_teacher():
    jobs = planned_jobs("results/esnac/cifar100/esnac-resnet18-c100/random/seed127/search.csv")
    assert [w for rule, w in jobs if rule == "esnac_search"] == [
        {"dataset": "cifar100", "teacher": "esnac-resnet18-c100", "strategy": "random", "seed": "127"}]
    assert [w for rule, w in jobs if rule == "train_teacher"] == [
        {"dataset": "cifar100", "teacher": "esnac-resnet18-c100", "seed": "1"}]
    stray = run_snakemake("--dry-run", "results/esnac/cifar100/esnac-resnet18-c100/random/seed3/record.json",
                          check=False)
    assert stray.returncode != 0 and "is not a search of any esnac experiment" in stray.stdout + stray.stderr


def test_translation_paths_route_to_their_teacher_corpus_and_targets():
    student = "results/translation/onmt_integration/students/lstm-integ/lstm-s256/seq-kd/none/seed1/record.json"
    jobs = planned_jobs(student)
    assert Counter(rule for rule, _ in jobs) == {"download_translation_file": 5, "prepare_corpus": 1,
                                                 "train_translation_teacher": 1, "translate_training_split": 1,
                                                 "train_translation_student": 1}
    assert [w for rule, w in jobs if rule == "translate_training_split"] == [
        {"corpus": "onmt_integration", "nmt_teacher": "lstm-integ", "seed": "1"}]
    qd = run_snakemake("-n", "-p", "results/translation/wmt13_europarl/students/lstm-wmt/lstm-wmt-s550/qd-b2-k256/"
                       "none/seed1/record.json").stdout
    assert "--teacher results/translation/wmt13_europarl/teachers/lstm-wmt/seed1/model.pt" in qd
    assert "quant.bits=2" in qd and "kd.weight=0.7" in qd and "'model_kwargs={\"hidden\": 550" in qd
    assert "--test-sets '{\"newstest2013\": {\"archive\": \"resources/newstest2013/downloads/test.tgz\"}}'" in qd
    stray = run_snakemake("--dry-run", "results/translation/onmt_integration/students/lstm-integ/lstm-s256/qd-b3-k256/"
                          "none/seed1/record.json", check=False)
    assert stray.returncode != 0 and "is not a run of any translation experiment" in stray.stdout + stray.stderr


def test_local_corpus_files_skip_the_download(tmp_path: Path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["translation"]["corpora"]["onmt_integration"]["files"] = {
        role: f"/data/{role}.txt" for role in ("train_src", "train_tgt", "test_src", "test_tgt")}
    config["translation"]["test_sets"] = {"newstest2013": {"src": "/data/nt13.de", "ref": "/data/nt13.en"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    args = ("resources/onmt_integration/corpus.pt", "--configfile", str(tmp_path / "c.yaml"))
    assert [rule for rule, _ in planned_jobs(*args)] == ["prepare_corpus"]
    shell = run_snakemake("-n", "-p", *args).stdout
    assert '"train_src": "/data/train_src.txt"' in shell and '"src": "/data/nt13.de"' in shell
    assert "--download-records" not in shell


def test_extracted_folder_skips_the_download(tmp_path: Path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["data"].update(extracted={"cifar10": "/data/cifar"}, verify_checksums=False)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs("resources/cifar10/dataset.pt", "--configfile", str(tmp_path / "c.yaml"))
    assert [rule for rule, _ in jobs] == ["prepare_dataset"]
    shell = run_snakemake("-n", "-p", "resources/cifar10/dataset.pt", "--configfile", str(tmp_path / "c.yaml")).stdout
    assert "--extracted /data/cifar --no-verify" in shell


def test_conda_environment_pins_match_the_lock():
    environment = yaml.safe_load((REPO / "rules/envs/compresslib.yaml").read_text())
    pins = dict(line.split("==") for line in environment["dependencies"][-1]["pip"])
    lock = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins == {name: lock[name] for name in pins}
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_profiles_use_file_names_snakemake_8_and_9_read():
    from snakemake.cli import get_profile_dir

    snakemake8_names = re.compile(r"config(\.v(?P<major>\d+)\+)?\.yaml")  # the profile files Snakemake 8 reads
    for profile in ("default", "slurm", "demo"):
        chosen = get_profile_dir(str(REPO / "profiles" / profile))[1].name  # the file this Snakemake (9) reads
        match = snakemake8_names.fullmatch(chosen)
        assert chosen == "config.v8+.yaml" and match and int(match["major"]) <= 8, (profile, chosen)


def _install_slurm_profile(config_home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "slurm-profile"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "XDG_CONFIG_HOME": str(config_home)})


def test_make_slurm_profile_makes_the_name_work(tmp_path: Path):
    assert _install_slurm_profile(tmp_path).returncode == 0
    link = tmp_path / "snakemake" / "slurm"
    assert link.is_symlink() and link.resolve() == (REPO / "profiles" / "slurm").resolve()
    assert _install_slurm_profile(tmp_path).returncode == 0  # idempotent
    link.unlink()
    link.mkdir()  # somebody else's profile of that name is never replaced
    refused = _install_slurm_profile(tmp_path)
    assert refused.returncode != 0 and "already exists" in refused.stderr and link.is_dir() and not link.is_symlink()


def test_slurm_profile_takes_site_settings_from_the_environment(tmp_path: Path):
    """`snakemake --profile slurm` by name, resources from rules + profiles/default, site settings from the env."""
    assert _install_slurm_profile(tmp_path / "xdg").returncode == 0
    target = "results/teachers/cifar10/conv-teacher/seed1/record.json"
    site = {"COMPRESSLIB_SLURM_PARTITION": "gpu-a", "COMPRESSLIB_SLURM_ACCOUNT": "proj42",
            "COMPRESSLIB_SLURM_QOS": "long", "COMPRESSLIB_GPU_MODEL": "a100"}
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), **site}
    dry_run = subprocess.run([str(SNAKEMAKE), "--profile", "slurm", "-n", target], cwd=REPO, env=env,
                             capture_output=True, text=True)
    assert dry_run.returncode == 0, dry_run.stderr
    assert "Using profiles slurm and workflow specific profile profiles/default" in dry_run.stderr
    resources = re.search(r"rule train_teacher:.*?resources: (.*?)\n", dry_run.stdout, re.S)[1]
    # `gpu` counts slots: a teacher holds all four of a GPU's (rules/slurm.smk asks SLURM for the one GPU)
    for item in ("slurm_partition=gpu-a", "slurm_account=proj42", "qos=long", "gpu_model=a100", "gpu=4",
                 "mem_mb=16000", "runtime=720"):
        assert item in resources.split(", "), (item, resources)
    unset = {key: value for key, value in env.items() if key not in site}
    plain = subprocess.run([str(SNAKEMAKE), "--profile", "slurm", "-n", target], cwd=REPO, env=unset,
                           capture_output=True, text=True)
    resources = re.search(r"rule train_teacher:.*?resources: (.*?)\n", plain.stdout, re.S)[1]
    assert "gpu=4" in resources and "slurm_partition" not in resources and "gpu_model" not in resources


def test_training_runtime_grows_with_each_attempt():
    profile = yaml.safe_load((REPO / "profiles/default/config.v8+.yaml").read_text())
    for rule in ("train_teacher", "distill_student"):
        runtime = profile["set-resources"][rule]["runtime"]  # a Snakemake resource expression
        minutes = [eval(runtime, {"attempt": attempt}) for attempt in (1, 2, 3)]
        assert minutes[0] >= 60 and minutes[0] < minutes[1] < minutes[2], (rule, runtime)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        return None


def test_download_rule_with_a_mirror_serving_the_wrong_bytes_fails_cleanly(tmp_path: Path):
    """A mirror (local HTTP server) serves a file whose md5 is not the official one."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "cifar-10-python.tar.gz").write_bytes(b"not the CIFAR-10 archive" * 1000)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=served))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = copy.deepcopy(DEMO_CONFIG)
        config["teachers"]["demo-teacher"]["dataset"] = "cifar10"  # so that cifar10 is a dataset of the DAG
        config["data"] = {"mirror": f"http://127.0.0.1:{server.server_port}/"}
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
        process = run_snakemake("--cores", "1", "--configfile", str(tmp_path / "c.yaml"),
                                "--directory", str(tmp_path / "run"), "resources/cifar10/archive.tar.gz", check=False)
    finally:
        server.shutdown()
    assert process.returncode != 0
    log = (tmp_path / "run/logs/download_archive/cifar10.log").read_text()
    assert "ChecksumError" in log and "c58f30108f718f92721af3b95e74349a" in log
    archive_dir = tmp_path / "run/resources/cifar10"
    assert not archive_dir.exists() or not any(archive_dir.iterdir())  # nothing half-written


# ---- the demo, end to end (slow) --------------------------------------------------------------------------------

@pytest.mark.slow
def test_demo_produces_tables_and_plots_with_real_numbers(demo_run: Path):
    tables, plots = demo_run / "results/tables", demo_run / "results/plots"
    runs = pd.read_csv(tables / "runs.csv")
    # teacher, 2 students x 5 activations x 2 seeds, 2 x 2 undistilled, 2 students x 2 seeds x 3 methods x 2 bits;
    # LIT: the text teacher, LIT, scratch and KD x 2 seeds; ESNAC: its teacher, 2 strategies x the top 2 trained;
    # translation: 2 teachers, 2 activations x 2 seeds and 4 methods x 1 seed
    assert len(runs) == 1 + 2 * 5 * 2 + 2 * 2 + 2 * 2 * 3 * 2 + 1 + 3 * 2 + 1 + 2 * 2 + 2 + 4 + 4
    assert set(runs.kind) == {"teacher", "distill", "undistilled", "quantize", "lit", "esnac", "translation"}
    teachers, students = (pd.read_csv(tables / f"runs-{kind}.csv") for kind in ("teacher", "distill"))
    teacher = teachers[teachers["labels.teacher"] == "demo-teacher"]["metrics.final_test_acc"].item()
    students = students[students["labels.teacher"] == "demo-teacher"]
    assert teacher > 0.7  # 10 classes: chance is 0.1
    per_student = students.groupby("labels.student")["metrics.final_test_acc"].mean()
    assert students["metrics.final_test_acc"].min() > 0.2 and per_student.min() > 0.4
    assert (per_student < teacher).all(), per_student
    assert per_student["demo-s0"] > per_student["demo-s1"]  # the bigger student learns more

    seeds = pd.read_csv(tables / "seeds-distill-best.csv")
    assert len(seeds) == 10 and seeds[["seed1", "seed2"]].notna().all().all()
    row = seeds.iloc[0]
    assert row["mean"] == pytest.approx((row["seed1"] + row["seed2"]) / 2)
    summary = pd.read_csv(tables / "summary-distill.csv")
    assert (summary["final_test_acc_n"] == 2).all()
    assert (summary["final_test_acc_ci95_low"] < summary["final_test_acc_mean"]).all()

    for name in ("teachers.png", "distill/demo/demo-s0.png", "distill/demo/demo-s1.png", "quantize/demo-quant.png",
                 "accuracy-vs-size/synthetic.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads(next((demo_run / "results/distill").rglob("record.json")).read_text())
    assert record["provenance"]["teacher_model"]["sha256"] and record["spec"]["kd"]["weight"] == 0.7
    for rule in ("prepare_dataset", "train_teacher", "distill_student", "train_undistilled", "quantize_train",
                 "quantize_post_training", "lit_train", "aggregate"):
        assert any((demo_run / "logs" / rule).rglob("*.log")) and any((demo_run / "benchmarks" / rule).rglob("*.tsv"))


@pytest.mark.slow
def test_demo_quantization_table_orders_methods_and_sizes(demo_run: Path):
    summary = pd.read_csv(demo_run / "results/tables/summary-quantize.csv")
    methods = ["fp-undistilled", "fp-distilled", "qd", "qd", "dq", "dq", "pm", "pm"]
    for student in ("demo-s0", "demo-s1"):
        rows = summary[summary["labels.student"] == student]
        assert list(rows.method) == methods and list(rows.bits) == [32, 32, 4, 2, 4, 2, 4, 2]
        assert (rows.final_test_acc_n == 2).all() and rows.final_test_acc_mean.notna().all()
        quantized = rows[rows.bits < 32]
        fp_size = rows[rows.bits == 32].size_mb.iloc[0]
        # 2-bit codes take less than 4-bit ones, and both far less than 32-bit floats
        for method in ("qd", "dq", "pm"):
            by_bits = quantized[quantized.method == method].set_index("bits")
            assert by_bits.packed_bytes[2] < by_bits.packed_bytes[4] and by_bits.size_mb[4] < fp_size / 4
        # QD and PM codes are `bits` wide; DQ's automatic allocation gives some tensors more points (wider codes)
        fixed_width = quantized[quantized.method != "dq"]
        assert (fixed_width.fp32_over_packed > 4).all() and (quantized.fp32_over_packed > 3).all(), \
            quantized.fp32_over_packed
        assert (quantized.huffman_mean_bits <= quantized.bits + 4).all()
    # QD's ordering at 2 bits: training at the quantized point beats rounding a trained model afterwards
    at_2_bits = summary[summary.bits == 2].groupby("method").final_test_acc_mean.mean()
    assert at_2_bits["qd"] > at_2_bits["pm"], at_2_bits

    # a packed file is the run's quantized model, exactly
    run = demo_run / "results/quantize/synthetic/demo-teacher/demo-s1/dq-b2-k256/relu/seed1"
    packed, _ = load_packed(run / "model.packed")
    saved, _ = load_model(run / "model.pt")
    for key, value in saved.state_dict().items():
        assert torch.equal(packed.state_dict()[key], value), key
    record = json.loads((run / "record.json").read_text())
    assert record["quantization"]["packed_bytes"] == (run / "model.packed").stat().st_size


@pytest.mark.slow
def test_demo_lit_beside_its_baselines_with_section_losses(demo_run: Path):
    summary = pd.read_csv(demo_run / "results/tables/summary-lit.csv")
    assert list(summary.method) == ["teacher", "scratch", "kd", "lit"]
    assert list(summary.final_test_acc_n) == [1, 2, 2, 2]
    # 5 classes (chance 0.2): every row learns; the student has 3/4 of the teacher's parameters
    assert (summary.final_test_acc_mean > 0.5).all(), summary.final_test_acc_mean
    assert summary.teacher_over_student_params.iloc[3] == pytest.approx(562_133 / 430_613)
    assert "LIT's gain in final test accuracy" in (demo_run / "results/tables/summary-lit.md").read_text()
    for seed in (1, 2):
        run = demo_run / f"results/lit/synthetic_text/demo-text-teacher-to-demo-text-student/seed{seed}"
        record = json.loads((run / "record.json").read_text())
        lit = record["lit"]
        assert lit["sections"] == 4 and [len(curve) for curve in lit["section_mse"]] == [2] * 4
        assert all(curve[1] < curve[0] for curve in lit["section_mse"])  # every section learns its teacher block
        assert lit["frozen_parameters"] and all(n.startswith(("stem.", "head.")) for n in lit["frozen_parameters"])
        history = pd.read_csv(run / "history.csv")
        assert list(history.phase) == ["lit", "lit", "full_model", "full_model"]
        png = demo_run / f"results/plots/lit/demo-lit/seed{seed}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    teacher = json.loads(next((demo_run / "results/teachers/synthetic_text").rglob("record.json")).read_text())
    assert teacher["provenance"]["dataset"]["source"] == "synthetic"


@pytest.mark.slow
def test_demo_esnac_searches_fan_out_full_training_and_score_it_against_the_teachers_record(demo_run: Path):
    summary = pd.read_csv(demo_run / "results/tables/summary-esnac.csv")
    assert list(zip(summary.strategy, summary["rank"])) == [("esnac", 0), ("esnac", 1), ("random", 0), ("random", 1)]
    teacher = json.loads(next((demo_run / "results/teachers/synthetic/demo-esnac-teacher").rglob("record.json"))
                         .read_text())
    assert (summary.teacher_acc == teacher["metrics"]["final_test_acc"]).all()  # read from the record
    expected = summary.ratio * (2 - summary.ratio) * summary.acc_after / summary.teacher_acc
    assert np.allclose(summary.f_after, expected) and summary.acc_after.notna().all()
    for strategy in ("esnac", "random"):
        run = demo_run / f"results/esnac/synthetic/demo-esnac-teacher/{strategy}/seed1"
        search = pd.read_csv(run / "search.csv")
        assert len(search) == 2 * 2 and list(search.best_reward) == list(search.reward.cummax())
        assert search.acquisition.notna().all() == (strategy == "esnac")
        record = json.loads((run / "record.json").read_text())
        assert record["teacher"]["params"] == 78_002 and not (run / "search-state.pt").exists()
        listed = json.loads((run / "records.json").read_text())["records"]
        assert len(listed) == 3  # the search and its two fully trained architectures
        for rank in (0, 1):
            final = json.loads((run / f"final-{rank}/record.json").read_text())
            assert final["kind"] == "esnac" and final["labels"]["rank"] == rank
            assert final["model"]["params"] == record["top"][rank]["params"]
            assert final["provenance"]["init_model"]["path"].endswith(f"top/arch-{rank}.pt")
    best = summary[summary.best]
    best_by_strategy = summary.groupby("strategy").f_after.max()
    assert len(best) == 2 and (best.groupby("strategy").f_after.max() == best_by_strategy).all()
    assert "Strategies compared" in (demo_run / "results/tables/summary-esnac.md").read_text()
    png = demo_run / "results/plots/esnac/demo-esnac/demo-esnac-teacher.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_demo_translation_teachers_students_and_table(demo_run: Path):
    root = demo_run / "results/translation/synthetic_translation"
    teachers = {name: json.loads((root / f"teachers/{name}/seed1/record.json").read_text())
                for name in ("demo-nmt-transformer", "demo-nmt-lstm")}
    for record in teachers.values():  # a toy task every teacher learns: BLEU far above zero
        assert record["run_kind"] == "teacher" and record["metrics"]["final_bleu"] > 20, record["metrics"]
        assert record["metrics"]["bleu_signature"].startswith("nrefs:1|case:lc|eff:no|tok:13a")
    summary = pd.read_csv(demo_run / "results/tables/summary-translation.csv")
    lma = summary[summary.experiment == "demo-lma-nmt"]
    assert list(lma.method) == ["teacher", "word-kd", "word-kd"] and list(lma.activation[1:]) == ["relu", "lma8"]
    assert list(lma["bleu.test_n"]) == [1, 2, 2] and (lma["bleu.test_mean"] > 5).all(), lma["bleu.test_mean"]
    qd = summary[summary.experiment == "demo-qd-nmt"]
    assert list(qd.method) == ["teacher", "undistilled", "word-kd", "seq-kd", "qd"]
    # 4-bit codes for all but the embeddings and the output layer, which stay in full precision
    assert list(qd.bits) == [32, 32, 32, 32, 4] and qd.fp32_over_packed.iloc[-1] > 3
    assert (qd.fp32_over_packed.iloc[:-1] == 1).all()
    # the sequence-level KD targets are the LSTM teacher's beam translations of the training sources
    targets = root / "teachers/demo-nmt-lstm/seed1/seq-kd"
    assert len((targets / "train.txt").read_text().splitlines()) == 3000
    seq = json.loads((root / "students/demo-nmt-lstm/demo-nmt-lstm-s/seq-kd/none/seed1/record.json").read_text())
    assert seq["run_kind"] == "seq_distill" and seq["provenance"]["targets"]["beam_size"] == 5
    quantized = root / "students/demo-nmt-lstm/demo-nmt-lstm-s/qd-b4-k256/none/seed1"
    record = json.loads((quantized / "record.json").read_text())
    assert record["quantization"]["packed_bytes"] == (quantized / "model.packed").stat().st_size
    assert len((quantized / "translations/test.txt").read_text().splitlines()) == 200
    for rule in ("prepare_corpus", "train_translation_teacher", "translate_training_split",
                 "train_translation_student"):
        assert any((demo_run / "logs" / rule).rglob("*.log")) and any((demo_run / "benchmarks" / rule).rglob("*.tsv"))
    png = demo_run / "results/plots/translation/demo-qd-nmt.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_rerun_after_changing_one_student_touches_only_its_jobs(demo_run: Path):
    unchanged = planned_jobs("--workflow-profile", "profiles/demo", "--directory", str(demo_run))
    assert unchanged == []
    config = copy.deepcopy(DEMO_CONFIG)
    config["students"]["demo-s1"]["train"]["lr"] = 0.02
    (demo_run / "changed.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs("--workflow-profile", "profiles/demo", "--directory", str(demo_run),
                        "--configfile", str(demo_run / "changed.yaml"))
    # its 10 distilled runs, its 2 undistilled references, and the 12 quantizations of its ReLU runs
    assert Counter(rule for rule, _ in jobs) == {"distill_student": 10, "train_undistilled": 2, "quantize_train": 8,
                                                 "quantize_post_training": 4, "aggregate": 1, "report_pages": 1,
                                                 "all": 1}
    assert {w["student"] for rule, w in jobs if rule not in ("aggregate", "report_pages", "all")} == {"demo-s1"}


@pytest.mark.slow
def test_local_gpu_resource_caps_concurrent_training_jobs(tmp_path: Path):
    """Locally, `--resources gpu=N` runs at most N students at once (each asks for one GPU slot, gpu=1)."""
    config = copy.deepcopy(DEMO_CONFIG)
    config["data"]["synthetic"] = {"train_size": 1500, "test_size": 200, "seed": 0}
    config["teachers"]["demo-teacher"]["train"].update(epochs=1, milestones=[])
    config["students"]["demo-s1"]["train"].update(epochs=1, milestones=[])
    config["distill"]["demo"].update(students=["demo-s1"], activations=["relu", "lma8"], seeds=[1, 2])
    config["quantize"] = {}
    config["lit"] = {}  # nor LIT jobs and their text teacher, nor ESNAC's: the demo test runs those
    del config["teachers"]["demo-text-teacher"], config["students"]["demo-text-student"]
    config["esnac"] = {}
    del config["teachers"]["demo-esnac-teacher"]
    config["translation"] = {}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    common = ["--configfile", str(tmp_path / "c.yaml"), "--workflow-profile", "none",
              "--directory", str(tmp_path / "run"), "--cores", "4", "--set-threads", "train_teacher=1",
              "distill_student=1"]

    def most_at_once() -> int:
        spans = []
        for path in (tmp_path / "run/results/distill").rglob("record.json"):
            record = json.loads(path.read_text())
            spans.append((record["timing"]["sessions"][0]["started_at"], record["provenance"]["finished_at"]))
        assert len(spans) == 4
        return max(sum(start < end_other and start_other < end for start_other, end_other in spans)
                   for start, end in spans)

    run_snakemake(*common, "--resources", "gpu=1")
    assert most_at_once() == 1
    run_snakemake(*common, "--resources", "gpu=2", "--forcerun", "distill_student")
    assert most_at_once() == 2
