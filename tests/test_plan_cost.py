"""The DAG's cost estimate: the jobs and their units, the arithmetic, and a real measurement of a small config end
to end."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from compresslib import plan_cost
from compresslib.experiments import load_config
from compresslib.plan_cost.measurement import Context, _compile_seconds
from conftest import REPO

pytestmark = pytest.mark.usefixtures("one_thread")

DEMO = REPO / "profiles/demo/config.yaml"


def test_the_paper_plan_has_every_job_of_the_dag_with_its_units(tmp_path: Path):
    the_plan = plan_cost.plan(load_config(REPO / "config.yaml", plan_cost.SCHEMA), directory=tmp_path)
    counts = Counter(job.rule for job in the_plan.jobs)
    # tests/test_workflow.py's paper DAG, plus ESNAC's full trainings (4 per search) that the checkpoint adds
    # the conv teacher, WRN-16-10 and ResNet-110 build tables of their logits (teacher_outputs: auto)
    assert counts == {"train_teacher": 21, "teacher_views": 3, "distill_student": 259, "train_undistilled": 14,
                      "quantize_train": 100,
                      "quantize_post_training": 38, "lit_train": 5, "esnac_search": 16, "esnac_full_train": 64,
                      "train_translation_teacher": 4, "translate_training_split": 1,
                      "train_translation_student": 146}
    jobs = {(job.rule, job.name): job for job in the_plan.jobs}  # a job's name is its log's path under its rule
    student = jobs["distill_student", "cifar10/conv-teacher/conv-s0/lma8/seed3"]
    # 200 epochs of 50K train and 10K test images, and one start-up (compiling, where the measurement compiles)
    assert {unit: count for (_, unit), count in student.units.items()} == {
        "startup": 1, "train": 200 * 50_000, "eval": 200 * 10_000}
    (group, _), = {key for key in student.units if key[1] == "train"}
    assert json.loads(group.teacher) == {"model": "qd_conv_teacher", "model_kwargs": {}, "activation": "relu"}
    assert group.values()["teacher_outputs"] == "cached"  # its KD logits come from the teacher's table
    assert group.values()["compile"] == "auto"  # compiled where the job would be: a runtime knob that costs
    views = jobs["teacher_views", "cifar10/conv-teacher/seed1"]
    assert list(views.units.values()) == [162 * 50_000] and all(unit == "view" for _, unit in views.units)
    # students take one slot of a GPU; teachers, their tables, searches a whole one
    sharing = {rule: {job.shares_gpu for job in the_plan.jobs if job.rule == rule} for rule in counts}
    assert {rule for rule, shares in sharing.items() if shares == {True}} == {
        "distill_student", "train_undistilled", "quantize_train", "esnac_full_train"}
    assert all(shares == {False} for rule, shares in sharing.items() if rule in (
        "train_teacher", "teacher_views", "esnac_search", "train_translation_teacher"))
    # ESNAC's searched teachers hold out the last 5,000 images: 45K train, 10K test + 5K held out per epoch
    teacher = jobs["train_teacher", "cifar100/esnac-vgg19-c100/seed1"]
    assert sorted(teacher.units.values()) == [1, 400 * 15_000, 400 * 45_000]
    lit = jobs["lit_train", "cifar10/resnet110-to-lit-resnet20/seed2"]
    assert {unit: count for (_, unit), count in lit.units.items()} == {
        "startup": 1, "train": 125 * 50_000, "eval": 125 * 10_000, "lit_train": 175 * 50_000, "lit_eval": 175 * 10_000}
    search = jobs["esnac_search", "cifar10/esnac-resnet34-c10/esnac/seed127"]
    assert {unit: count for (_, unit), count in search.units.items()} == {"candidate": 160 * 10 * 50_000,
                                                                          "proposal": 160}
    random_search = jobs["esnac_search", "cifar10/esnac-resnet34-c10/random/seed127"]
    assert "proposal" not in {unit for _, unit in random_search.units}
    pm = jobs["quantize_post_training", "cifar10/conv-teacher/qd-s2/pm-b4-knone/relu/seed1"]
    assert pm.units and all(unit == "eval" and count == 2 * 10_000 for (_, unit), count in pm.units.items())
    # no corpus is prepared under tmp_path: translation jobs are listed, not estimated, and say why
    translation = [job for job in the_plan.jobs if "translation" in job.rule]
    assert translation and all(job.missing and "corpus.pt is not prepared" in job.missing for job in translation)
    # a cost group per kind of epoch: seeds and learning rates share one, activations and students do not
    assert len(the_plan.groups) == len(set(the_plan.groups)) < len(the_plan.jobs) / 4


def test_the_estimate_is_units_times_measured_rates_and_shared_gpus_divide_by_the_speedup():
    group = plan_cost.CostGroup("training", "{}")
    other = plan_cost.CostGroup("search", "{}")
    jobs = [plan_cost.Job("a", "one", {(group, "startup"): 1, (group, "train"): 3600, (group, "eval"): 7200},
                          shares_gpu=True),
            plan_cost.Job("a", "two", {(other, "candidate"): 36}),
            plan_cost.Job("b", "three", missing="no corpus")]
    the_plan = plan_cost.Plan(jobs, [group, other])
    rates = {group: {"startup": 360.0, "train": 2.0, "eval": 0.5}, other: {"candidate": 100.0}}
    # job one: 0.1 h compiling + 2 h training + 1 h evaluating, sharing a GPU at a 2.5x speed-up
    rows = plan_cost.estimate(the_plan, rates, concurrency_speedup=2.5)
    assert rows[0] == {"rule": "a", "jobs": 2, "estimated": 2, "job_hours": pytest.approx(3.1 + 1),
                       "gpu_hours": pytest.approx(3.1 / 2.5 + 1), "missing": []}
    assert rows[1] == {"rule": "b", "jobs": 1, "estimated": 0, "job_hours": 0.0, "gpu_hours": 0.0,
                       "missing": ["no corpus"]}
    assert rows[2] == {"rule": "total", "jobs": 3, "estimated": 2, "job_hours": pytest.approx(4.1),
                       "gpu_hours": pytest.approx(2.24), "missing": ["no corpus"]}
    # no speed-up given: sharing gains nothing, GPU-hours are job-hours
    assert plan_cost.estimate(the_plan, rates)[2]["gpu_hours"] == pytest.approx(4.1)


def test_the_compile_start_up_is_each_phases_first_epoch_over_its_warm_one():
    def epoch(train: float, evaluate: float) -> dict:
        return {"train_seconds": str(train), "eval_seconds": str(evaluate)}  # as history.csv reads back

    # one phase: 30 s of compiling (training and evaluation graphs) in its first epoch
    assert _compile_seconds([epoch(32, 9), epoch(2, 1)]) == pytest.approx(38)
    # LIT: phase 1 (eager) and phase 2, two epochs each; noise never makes it negative
    assert _compile_seconds([epoch(5, 1), epoch(5, 1), epoch(20, 4), epoch(3, 1)]) == pytest.approx(20)
    assert _compile_seconds([epoch(2, 1), epoch(2.1, 1)]) == 0


def test_a_speedup_beyond_the_slots_of_a_gpu_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture):
    monkeypatch.setenv("COMPRESSLIB_GPU_SLOTS", "4")
    with pytest.raises(SystemExit):
        plan_cost.main(["--config", str(DEMO), "--plan-only", "--concurrency-speedup", "4.5"])
    assert "4 jobs sharing a GPU (COMPRESSLIB_GPU_SLOTS) cannot gain more than 4x" in capsys.readouterr().err


def _small_config() -> dict:
    """The demo with one student of each kind: a teacher, a KD student, QD and DQ, LIT, an ESNAC search; KD and QD
    read the teachers' tables of logits."""
    config = yaml.safe_load(DEMO.read_text())
    config["teacher_outputs"] = "cached"
    config["distill"]["demo"].update(students=["demo-s1"], activations=["relu"], seeds=[1])
    config["quantize"]["demo-quant"].update(students=["demo-s1"], seeds=[1], methods=["qd", "dq", "pm"], bits=[4])
    config["lit"]["demo-lit"]["seeds"] = [1]
    config["esnac"]["demo-esnac"]["strategies"] = ["esnac"]
    config["translation"] = {}
    return config


def test_a_small_config_is_measured_and_estimated_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_small_config()))
    monkeypatch.setenv("COMPRESSLIB_GPU_SLOTS", "3")
    plan_cost.main(["--config", str(tmp_path / "c.yaml"), "--device", "cpu", "--examples", "32", "--threads", "1",
                    "--concurrency-speedup", "1.5", "--out", str(tmp_path / "plan.json")])
    result = json.loads((tmp_path / "plan.json").read_text())
    rules = {row["rule"]: row for row in result["estimate"]}
    assert set(rules) == {"train_teacher", "teacher_views", "distill_student", "train_undistilled", "quantize_train",
                          "quantize_post_training", "lit_train", "esnac_search", "esnac_full_train", "total"}
    assert all(row["estimated"] == row["jobs"] and row["job_hours"] > 0 for row in rules.values())
    for key in ("job_hours", "gpu_hours"):
        assert rules["total"][key] == pytest.approx(sum(r[key] for name, r in rules.items() if name != "total"))
    # students share a GPU at the given speed-up; teachers do not
    assert rules["distill_student"]["gpu_hours"] == pytest.approx(rules["distill_student"]["job_hours"] / 1.5)
    assert rules["train_teacher"]["gpu_hours"] == rules["train_teacher"]["job_hours"]
    units = {unit for group in result["groups"] for unit in group["rates"]}
    assert {"train", "eval", "lit_train", "lit_eval", "candidate", "proposal", "view", "startup"} <= units
    assert any(json.loads(group["spec"]).get("teacher_outputs") == "cached" for group in result["groups"])
    # auto compiles on CUDA only: on the CPU nothing compiles and no job has a compile start-up
    assert set(result["compile_used"]) == {"off"}
    assert all(rate == 0 if unit == "startup" else rate > 0
               for group in result["groups"] for unit, rate in group["rates"].items())
    assert result["examples"] == 32 and "cpu" in result["device"]
    assert result["slots_per_gpu"] == 3 and result["concurrency_speedup"] == 1.5
    out = capsys.readouterr().out
    assert "distill_student" in out and "students share a GPU 3 ways at a 1.5x speed-up (measured)" in out


def test_translation_jobs_are_measured_on_the_prepared_corpus(tmp_path: Path):
    from compresslib.data.corpus import build_corpus

    config = yaml.safe_load(DEMO.read_text())
    for section in ("distill", "quantize", "lit", "esnac"):
        config[section] = {}
    config["teachers"] = {"demo-teacher": config["teachers"]["demo-teacher"]}  # the schema asks for one
    config["translation"]["corpora"]["synthetic_translation"]["synthetic"].update(train_size=300, test_size=40)
    config["translation"]["experiments"]["demo-lma-nmt"].update(activations=["relu"], seeds=[1])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    loaded = load_config(tmp_path / "c.yaml", plan_cost.SCHEMA)
    corpus = loaded.config["translation"]["corpora"]["synthetic_translation"]
    build_corpus("synthetic_translation", tmp_path / "resources/synthetic_translation/corpus.pt",
                 vocab_size=corpus["vocab_size"], max_length=corpus["max_length"], synthetic=corpus["synthetic"])
    the_plan = plan_cost.plan(loaded, directory=tmp_path)
    assert not any(job.missing for job in the_plan.jobs)
    seq = next(job for job in the_plan.jobs if job.rule == "translate_training_split")
    assert list(seq.units.values()) == [300]  # the teacher translates every training pair once
    context = Context(loaded.config, tmp_path, "cpu", 16, 1)
    kd_group = next(group for group in the_plan.groups if group.teacher != "null")
    rates = plan_cost.measure(kd_group, context)
    assert set(rates) == {"train_token", "eval_token", "translate"} and all(rate > 0 for rate in rates.values())
    rows = plan_cost.estimate(the_plan, {group: plan_cost.measure(group, context) for group in the_plan.groups})
    # the image teacher, 2 translation teachers, the sequence-level KD targets, 1 + 4 students
    assert rows[-1]["estimated"] == rows[-1]["jobs"] == 1 + 2 + 1 + 1 + 4 and rows[-1]["job_hours"] > 0


def test_plan_only_lists_the_groups_without_measuring(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(plan_cost, "measure", lambda *args: pytest.fail("--plan-only measured"))
    config = copy.deepcopy(_small_config())
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    plan_cost.main(["--config", str(tmp_path / "c.yaml"), "--plan-only"])
    lines = capsys.readouterr().out.splitlines()
    assert lines and {line.split()[0] for line in lines} == {"training", "teacher_views", "search", "esnac_full_train"}
