"""Teacher outputs cached per view: the table against a live teacher, its key, cached vs online KD runs, resume,
refusals, and which teachers the config caches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import validate

from compresslib.data.datasets import load_dataset, prepare_dataset
from compresslib.data.loader import DeviceLoader
from compresslib.experiments import check_config
from compresslib.experiments.teachers import teacher_kd_epochs, teacher_outputs
from compresslib.io import sha256_file
from compresslib.models import load_model
from compresslib.models.convnet import ConvNet
from compresslib.runs.checkpoint import CheckpointMismatch, save_checkpoint
from compresslib.settings import SpecError
from compresslib.training import loop
from compresslib.training.loop import train
from compresslib.specs.training import build_spec
from compresslib.training.teacher_views import (TeacherViews, compute_teacher_views, save_teacher_views, view_count,
                                                view_index)
from conftest import REPO, killed_and_resumed, train_script_command

NORMALIZATION = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}  # the synthetic dataset's
# A ResNet-8 student of a ConvNet teacher: the student's forward pass is not the teacher's, so a test can make the
# teacher's raise
STUDENT = {"kind": "distill", "dataset": "synthetic", "model": "resnet8", "epochs": 3, "batch_size": 16, "lr": 0.05,
           "schedule": "multistep", "milestones": [2], "eval_batch_size": 256, "threads": 1, "kd": {"weight": 0.7}}
# bf16 keeps 8 significant bits: rounding moves a value by at most 2^-8 of its magnitude. The float32 forward passes
# of a batch and of the table's batches may differ in summation order by far less than ATOL.
BF16_RELATIVE, ATOL = 2.0**-8, 1e-5
TRAIN_SIZE = 256  # 41,472 views: the table takes about 10 s on one thread


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """256 training and 256 test images of an easier synthetic task than the default (less noise, weaker
    distractors), so that a few epochs on so few images learn."""
    path = tmp_path_factory.mktemp("views-data") / "dataset.pt"
    prepare_dataset("synthetic", path, synthetic={"train_size": TRAIN_SIZE, "test_size": 256, "seed": 5,
                                                  "noise": 0.3, "distractor_max": 0.3})
    return path


@pytest.fixture(scope="module")
def teacher(data: Path, tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    run_dir = tmp_path_factory.mktemp("views-teacher")
    train(build_spec(STUDENT | {"kind": "teacher", "model": "demo_conv_student1", "kd": None, "epochs": 10,
                                "milestones": [8]}), data, run_dir)
    return run_dir / "model.pt"


@pytest.fixture(scope="module")
def views(teacher: Path, data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The views file, made by the workflow's script."""
    out = tmp_path_factory.mktemp("views") / "views.pt"
    subprocess.run([sys.executable, str(REPO / "workflow_scripts/teacher_views.py"), "--teacher", str(teacher),
                    "--data", str(data), "--out", str(out), "--device", "cpu", "--threads", "1"],
                   check=True, capture_output=True)
    return out


def _load_views(views: Path, teacher: Path, data: Path) -> TeacherViews:
    return TeacherViews.load(views, "cpu", teacher_sha256=sha256_file(teacher), dataset_sha256=sha256_file(data),
                             normalization=NORMALIZATION)


def test_cached_views_are_what_a_live_teacher_sees_on_an_augmented_batch(views: Path, teacher: Path, data: Path,
                                                                           one_thread: None):
    table = _load_views(views, teacher, data)
    assert table.logits.shape == (TRAIN_SIZE, 162, 10) and table.logits.dtype == torch.bfloat16
    model, _ = load_model(teacher)
    dataset = load_dataset(data)
    loader = DeviceLoader(dataset["train_inputs"], dataset["train_labels"], batch_size=64, augment=True, shuffle=True,
                          seed=7, **NORMALIZATION)
    loader.set_epoch(3)
    inputs, _, index, plan = next(loader.indexed_batches())
    with torch.inference_mode():
        live = model.eval()(inputs)
    dy, dx, flip = plan.dy[index], plan.dx[index], plan.flip[index]
    assert len(set(zip(dy.tolist(), dx.tolist(), flip.tolist()))) > 30  # the batch mixes many views
    cached = table.lookup(index, dy, dx, flip)
    assert cached.dtype == torch.float32
    assert ((cached - live).abs() <= BF16_RELATIVE * live.abs() + ATOL).all(), (cached - live).abs().max()
    # the same class wins, except where the top two logits are closer than their rounding (one image here)
    top = live.topk(2, dim=1).values
    near_tie = top[:, 0] - top[:, 1] <= 2 * (BF16_RELATIVE * top.abs().amax(1) + ATOL)
    assert torch.equal(cached.argmax(1)[~near_tie], live.argmax(1)[~near_tie]) and near_tie.sum() == 1
    # the key matters: another flip or crop offset of the same images is another row
    for other in (table.lookup(index, dy, dx, ~flip), table.lookup(index, (dy + 1) % 9, dx, flip),
                  table.lookup(index, dy, (dx + 3) % 9, flip)):
        assert (other - live).abs().amax(1).min() > 1e-3


def test_view_keys_cover_every_view_once_and_an_unaugmented_run_has_one():
    dy, dx, flip = torch.meshgrid(torch.arange(9), torch.arange(9), torch.arange(2), indexing="ij")
    keys = view_index(dy.flatten(), dx.flatten(), flip.flatten().bool())
    assert keys.dtype == torch.int64 and sorted(keys.tolist()) == list(range(162)) == list(range(view_count()))
    assert view_count(pad=2) == 50 and view_count(augment=False) == 1
    one_view = TeacherViews(torch.arange(6.0).view(3, 1, 2), augment=False)
    assert torch.equal(one_view.lookup(torch.tensor([2, 0]), torch.tensor([0, 8]), torch.tensor([3, 4]),
                                       torch.tensor([True, False])), torch.tensor([[4.0, 5.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"must be \(examples, 162 views, classes\) for pad 4, got \(3, 1, 2\)"):
        TeacherViews(torch.zeros(3, 1, 2))


def test_an_unaugmented_table_is_the_centre_view_of_the_augmented_one(views: Path, teacher: Path, data: Path,
                                                                      one_thread: None):
    model, _ = load_model(teacher)
    centre = compute_teacher_views(model, load_dataset(data)["train_inputs"], **NORMALIZATION, augment=False,
                                   device="cpu")
    assert centre.shape == (TRAIN_SIZE, 1, 10)
    key = view_index(torch.tensor(4), torch.tensor(4), torch.tensor(False))  # crop at the padding, unflipped
    assert key == 80 and torch.equal(centre[:, 0], _load_views(views, teacher, data).logits[:, 80])


@pytest.mark.parametrize("validation", [{}, {"validation": "holdout", "holdout_size": 64}],
                         ids=["whole-split", "holdout"])
def test_cached_kd_matches_online_and_never_runs_the_teacher(views: Path, teacher: Path, data: Path, tmp_path: Path,
                                                             validation: dict, one_thread: None,
                                                             monkeypatch: pytest.MonkeyPatch):
    online = train(build_spec(STUDENT | validation), data, tmp_path / "online", teacher_path=teacher)

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run ran its teacher")

    monkeypatch.setattr(ConvNet, "forward", refuse)  # the teacher's network (the student is a ResNet)
    monkeypatch.setattr(loop, "load_model", refuse)
    cached = train(build_spec(STUDENT | validation | {"teacher_outputs": "cached"}), data, tmp_path / "cached",
                   teacher_path=teacher, teacher_views_path=views)
    assert cached["spec"]["teacher_outputs"] == "cached" and online["spec"]["teacher_outputs"] == "online"
    assert cached["provenance"]["teacher_views"] == {"path": str(views), "sha256": sha256_file(views)}
    assert online["provenance"]["teacher_views"] is None
    assert cached["provenance"]["teacher_model"] == online["provenance"]["teacher_model"]
    # The same batches and initial weights; the teacher's logits differ only by bf16 rounding, so the first epoch's
    # loss agrees to 0.1 % (logits of other images, e.g. held-out positions mapped wrongly, would not), the later
    # ones to 1 % ...
    losses_online, losses_cached = online["curve"]["train_loss"], cached["curve"]["train_loss"]
    assert losses_cached[0] == pytest.approx(losses_online[0], rel=1e-3)
    assert losses_cached == pytest.approx(losses_online, rel=1e-2)
    # ... and the test accuracy within 3 points (8 of 256 images; one epoch here moves it by 15)
    assert abs(cached["metrics"]["final_test_acc"] - online["metrics"]["final_test_acc"]) <= 0.03
    # It learnt: chance is 0.1; three epochs on all 256 images reach 0.54, on the 192 a 64-image holdout leaves 0.29
    assert online["metrics"]["final_test_acc"] > 0.2


def test_killed_cached_run_resumes_to_bit_identical_results(views: Path, teacher: Path, data: Path, tmp_path: Path):
    def command(run_dir: Path) -> list[str]:
        return train_script_command(data, run_dir, STUDENT | {"epochs": 4, "teacher_outputs": "cached"},
                                    "--teacher", str(teacher), "--teacher-views", str(views))

    reference, resumed = killed_and_resumed(command, tmp_path)
    assert resumed["spec"]["teacher_outputs"] == reference["spec"]["teacher_outputs"] == "cached"
    assert resumed["provenance"]["teacher_views"]["sha256"] == sha256_file(views)


def _fake_views(out: Path, data_file: Path, teacher_file: Path, **changes) -> Path:
    """A views file of the right shape whose provenance ``changes`` alter (zeros: it must be refused, never read)."""
    facts = {"logits": torch.zeros(TRAIN_SIZE, 162, 10, dtype=torch.bfloat16), "pad": 4, "augment": True,
             "teacher": {"path": str(teacher_file), "sha256": sha256_file(teacher_file)},
             "dataset": {"path": str(data_file), "sha256": sha256_file(data_file)},
             "normalization": NORMALIZATION} | changes
    save_teacher_views(out, facts.pop("logits"), **facts)
    return out


@pytest.mark.parametrize(("changes", "message"), [
    ({"teacher": {"path": "other/model.pt", "sha256": "ab" * 32}},
     r"was made from the teacher file other/model.pt \(sha256 abababababab\), this run's teacher file has sha256"),
    ({"dataset": {"path": "other/dataset.pt", "sha256": "cd" * 32}},
     r"was made from the dataset file other/dataset.pt \(sha256 cdcdcdcdcdcd\), this run's dataset file has sha256"),
    ({"normalization": {"mean": [0.4] * 3, "std": [0.2] * 3}},
     r"was made with normalisation \{'mean': \[0.4, 0.4, 0.4\].*this run uses \{'mean': \[0.5, 0.5, 0.5\]"),
    ({"logits": torch.zeros(TRAIN_SIZE, 1, 10), "augment": False},
     r"holds the unaugmented images, but this run trains on crops of pad 4 and their flips"),
], ids=["other-teacher", "other-dataset", "other-normalisation", "unaugmented"])
def test_views_made_for_another_run_are_refused_before_training(teacher: Path, data: Path, tmp_path: Path,
                                                                changes: dict, message: str):
    fake = _fake_views(tmp_path / "views.pt", data, teacher, **changes)
    with pytest.raises(ValueError, match=rf"teacher-views file {fake} .*{message}"):
        train(build_spec(STUDENT | {"teacher_outputs": "cached"}), data, tmp_path / "run", teacher_path=teacher,
              teacher_views_path=fake)
    assert not (tmp_path / "run").exists()


def test_cached_mode_needs_views_and_views_need_cached_mode(views: Path, teacher: Path, data: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    build_spec(STUDENT | {"kind": "quantize", "teacher_outputs": "cached",
                          "quant": {"method": "qd", "bits": 2}})  # QD may use a table
    with pytest.raises(ValueError, match="teacher_outputs=cached reads the teacher's logits from its views file"):
        train(build_spec(STUDENT | {"teacher_outputs": "cached"}), data, run_dir, teacher_path=teacher)
    with pytest.raises(ValueError, match=f"teacher-views file {views} was given, but teacher_outputs is 'online'"):
        train(build_spec(STUDENT), data, run_dir, teacher_path=teacher, teacher_views_path=views)
    assert not run_dir.exists()
    # a run keeps its mode across a resume: it is part of the run's identity
    cached = build_spec(STUDENT | {"teacher_outputs": "cached"})
    run_dir.mkdir()
    save_checkpoint(run_dir / "checkpoint.pt", {"identity": cached.identity(), "sessions": [], "next_epoch": 1})
    with pytest.raises(CheckpointMismatch, match="teacher_outputs: 'cached' in the checkpoint, 'online' requested"):
        train(build_spec(STUDENT), data, run_dir, teacher_path=teacher)


@pytest.mark.parametrize(("values", "message"), [
    ({"kind": "lit", "lit": {"epochs": 1}, "model": "resnet8"}, "online for LIT"),
    ({"kind": "quantize", "quant": {"method": "dq", "bits": 2}}, "online for quant.method=dq"),
    ({"kind": "undistilled", "kd": None}, "online for a run without kd settings"),
    ({"dataset": "synthetic_text", "augment": False}, "online for the text dataset synthetic_text"),
], ids=["lit", "dq", "no-kd", "text"])
def test_cached_mode_is_refused_where_a_table_cannot_serve(values: dict, message: str):
    with pytest.raises(SpecError, match=f"teacher_outputs: got 'cached', expected {message}"):
        build_spec(STUDENT | {"teacher_outputs": "cached"} | values)


# ---- which teachers the workflow caches ------------------------------------------------------------------------

def _config(path: str, mode: str | None = None) -> dict:
    config = yaml.safe_load((REPO / path).read_text())
    if mode is not None:
        config["teacher_outputs"] = mode
    validate(config, str(REPO / "rules/schemas/config.schema.yaml"))  # fills the defaults, teacher_outputs: auto
    return config


def test_auto_caches_the_teachers_whose_students_train_more_epochs_than_an_image_has_views():
    study = check_config(_config("config.yaml"))
    epochs = teacher_kd_epochs(study)
    # conv-teacher: 204 distilled students (LMA 75 + the bins ablation's 120 new tags + QD's 9 relu students) x 200
    # epochs, QD 18 + LMA joint 60 runs x 200; wrn16-10: 50 students + 2 QD runs x 200; resnet110: LIT's KD baseline,
    # 3 seeds x 300; the VDCNNs: LIT's KD baseline x 25 (text); ESNAC's teachers distil nobody
    assert {name: count for name, count in epochs.items() if count} == {
        "conv-teacher": 204 * 200 + 78 * 200, "wrn16-10": 52 * 200, "resnet110": 900, "vdcnn17": 25, "vdcnn29": 25}
    modes = teacher_outputs(study)
    assert {name for name, mode in modes.items() if mode == "cached"} == {"conv-teacher", "wrn16-10", "resnet110"}
    assert len(modes) == len(study.config["teachers"])

    demo = check_config(_config("profiles/demo/config.yaml"))
    # 2 students x 5 activations x 2 seeds + 8 QD runs, 4 epochs each: 112 < 162 views, so the demo stays online
    assert teacher_kd_epochs(demo) == {"demo-teacher": (20 + 8) * 4, "demo-text-teacher": 2 * 4,
                                       "demo-esnac-teacher": 0}
    assert set(teacher_outputs(demo).values()) == {"online"}


def test_forced_modes_cache_every_image_teacher_with_students_or_none():
    assert teacher_outputs(check_config(_config("profiles/demo/config.yaml", "cached"))) == {
        "demo-teacher": "cached", "demo-text-teacher": "online", "demo-esnac-teacher": "online"}
    assert set(teacher_outputs(check_config(_config("config.yaml", "online"))).values()) == {"online"}


@pytest.mark.parametrize(("epochs", "mode"), [(5, "online"), (6, "cached")])
def test_auto_caches_once_the_students_epochs_exceed_the_views(epochs: int, mode: str):
    config = _config("profiles/demo/config.yaml")
    for student in ("demo-s0", "demo-s1"):  # the demo teacher's 28 runs: 140 or 168 epochs against 162 views
        config["students"][student]["train"]["epochs"] = epochs
    study = check_config(config)
    assert teacher_kd_epochs(study)["demo-teacher"] == 28 * epochs
    assert teacher_outputs(study)["demo-teacher"] == mode
