"""LIT: section wiring, the frozen stem and head, the phase-1 objective and epoch, and the original YAML format."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import yaml

from compresslib.data.loader import DeviceLoader
from compresslib.lit import (check_pair, copy_and_freeze_ends, from_lit_yaml, keep_ends_frozen, phase_one_loss,
                             phase_one_parameter_sets, section_mse, train_phase_one_epoch)
from compresslib.losses import kd_loss
from compresslib.models import create_model, load_model, model_file_info, save_model
from compresslib.settings import SpecError
from compresslib.training.loop import train
from compresslib.specs.training import build_spec
from conftest import REPO

IMAGES = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
TARGETS = torch.tensor([0, 3, 7, 9])
KD = {"temperature": 6.0, "weight": 0.05, "soft_loss": "cross_entropy"}  # LIT: alpha 0.95 on the hard term


def _pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return create_model("resnet14", num_classes=10), create_model("resnet8", num_classes=10)


def test_student_sections_take_the_teachers_inputs_and_give_its_output_shapes():
    teacher, student = _pair()
    statistics = {key: value.clone() for key, value in teacher.state_dict().items()}
    check_pair(teacher.train(), student.train(), IMAGES[:1])
    assert teacher.training and student.training and all(module.training for module in student.modules())
    assert all(torch.equal(value, statistics[key]) for key, value in teacher.state_dict().items())  # ran in eval
    outputs = teacher.eval().section_outputs(IMAGES)
    for index, section in enumerate(student.sections):
        assert section(outputs[index]).shape == outputs[index + 1].shape
    with pytest.raises(ValueError, match="teacher and student differ at the output of section 0"):
        check_pair(teacher, _narrow_student(), IMAGES[:1])
    with pytest.raises(ValueError, match="needs models with stem / sections / head"):
        check_pair(create_model("demo_conv_student1", num_classes=10), student, IMAGES[:1])


def _narrow_student() -> torch.nn.Module:
    """A student whose first section widens differently: LIT cannot pair it with the teacher."""
    student = create_model("resnet8", num_classes=10)
    student.sections[0] = torch.nn.Conv2d(16, 8, 3, padding=1)
    return student


def test_phase_one_objective_combines_kd_and_section_losses_as_the_originals():
    teacher, student = _pair()
    copy_and_freeze_ends(teacher, student)
    teacher.eval()
    student.train()
    keep_ends_frozen(student)
    torch.manual_seed(1)
    halved = phase_one_loss(teacher, student, IMAGES, TARGETS, beta=0.75, combine="halved", **KD)
    outputs = teacher.section_outputs(IMAGES)
    expected_sections = [F.mse_loss(student.sections[i](outputs[i]), outputs[i + 1]) for i in range(3)]
    expected_kd = kd_loss(student(IMAGES), TARGETS, teacher(IMAGES), **KD)
    assert [loss.item() for loss in halved.sections] == pytest.approx([loss.item() for loss in expected_sections])
    assert halved.kd.item() == pytest.approx(expected_kd.item())
    expected = (0.75 * expected_kd + 0.25 * sum(expected_sections)) / 2
    assert halved.total.item() == pytest.approx(expected.item())
    summed = phase_one_loss(teacher, student, IMAGES, TARGETS, beta=0.05, combine="sections", **KD)
    assert summed.total.item() == pytest.approx((0.05 * summed.kd + 0.95 * sum(summed.sections)).item())
    with pytest.raises(ValueError, match="combine must be one of sections, halved"):
        phase_one_loss(teacher, student, IMAGES, TARGETS, beta=0.5, combine="mean", **KD)


def test_a_section_loss_reaches_only_its_own_section_and_the_ends_stay_frozen():
    teacher, student = _pair()
    frozen = copy_and_freeze_ends(teacher, student)
    assert frozen and all(name.startswith(("stem.", "head.")) for name in frozen)
    for name in ("stem", "head"):
        for key, value in getattr(student, name).state_dict().items():
            assert torch.equal(value, getattr(teacher, name).state_dict()[key]), (name, key)
    before = {key: value.clone() for key, value in student.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    teacher.eval()
    student.train()
    keep_ends_frozen(student)
    for _ in range(3):
        loss = phase_one_loss(teacher, student, IMAGES, TARGETS, beta=0.0, combine="sections", **KD)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
    after = student.state_dict()
    for key, value in before.items():
        if key.startswith(("stem.", "head.")):  # parameters and BatchNorm statistics alike
            assert torch.equal(after[key], value), key
    assert any(not torch.equal(after[key], value) for key, value in before.items() if key.startswith("sections."))

    # with beta = 0 the loss of section 1 gives no gradient to sections 0 and 2
    student.zero_grad()
    outputs = teacher.section_outputs(IMAGES)
    F.mse_loss(student.sections[1](outputs[1]), outputs[2]).backward()
    for index, section in enumerate(student.sections):
        has_grad = any(p.grad is not None and p.grad.abs().sum() > 0 for p in section.parameters())
        assert has_grad == (index == 1), index


def test_a_phase_one_epoch_trains_only_the_sections_and_per_section_optimisers_equal_a_shared_one():
    """The loop's phase-1 epoch: ends (parameters and BatchNorm statistics) stay the teacher's; VDCNN's one SGD per
    section and CIFAR's one shared SGD take bit-identical steps (same hyperparameters, elementwise updates)."""
    teacher, student = _pair()
    teacher.eval()
    copy_and_freeze_ends(teacher, student)
    twin = create_model("resnet8", num_classes=10)
    twin.load_state_dict(student.state_dict())
    copy_and_freeze_ends(teacher, twin)
    before = {key: value.clone() for key, value in student.state_dict().items()}
    images = (torch.rand(48, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 255).to(torch.uint8)
    loader = DeviceLoader(images, torch.arange(48) % 10, batch_size=16, mean=[0.5] * 3, std=[0.5] * 3, augment=True,
                          shuffle=True, seed=1)
    autocast = torch.autocast("cpu", enabled=False)
    results = {}
    for model, optimizer in ((student, "per_section"), (twin, "shared")):
        sets = phase_one_parameter_sets(model, optimizer)
        assert len(sets) == (3 if optimizer == "per_section" else 1)
        optimizers = [torch.optim.SGD(parameters, lr=0.1, momentum=0.9, weight_decay=1e-4) for parameters in sets]
        results[optimizer] = train_phase_one_epoch(teacher, model, loader, optimizers, beta=0.5, combine="sections",
                                                   kd=KD, autocast=autocast)
    assert results["per_section"] == results["shared"]
    loss, accuracy, sections = results["shared"]
    assert len(sections) == 3 and all(value > 0 for value in sections) and 0 <= accuracy <= 1 and loss > 0
    after = student.state_dict()
    for key, value in twin.state_dict().items():
        assert torch.equal(after[key], value), key
    for key, value in before.items():
        if key.startswith(("stem.", "head.")):
            assert torch.equal(after[key], value), key
        elif key.endswith("weight"):
            assert not torch.equal(after[key], value), key
    assert student.training and not student.stem.training and not student.head.training
    test_mse = section_mse(teacher, student, loader, autocast)
    assert len(test_mse) == 3 and student.training  # evaluated in eval mode, modes restored


def test_lit_settings_are_checked():
    assert build_spec({"kind": "lit", "kd": {}, "lit": {"beta": 0.75}}).lit.beta == 0.75
    with pytest.raises(SpecError, match="LIT needs kd settings"):
        build_spec({"kind": "lit", "lit": {}})
    with pytest.raises(SpecError, match="lit.optimizer"):
        build_spec({"kind": "lit", "kd": {}, "lit": {"optimizer": "adam"}})
    with pytest.raises(SpecError, match="lit.beta"):
        build_spec({"kind": "lit", "kd": {}, "lit": {"beta": 1.5}})


README_CONFIG = """
models:
  dataset: amazon_review_full
  training_architecture: vdcnn9-maxpool
  training_checkpoint:
  base_architecture: vdcnn17-maxpool
  base_model_path: ./models/teachers/vdcnn17.pth
sequence:
  lit: {epochs: 15, lr: 0.01, milestones: [3, 6, 9, 12, 15]}
  full_model: {epochs: 10, lr: 0.001, milestones: [3, 6, 9]}
params:
  logdir: ./runs/lit_vdcnn9-maxpool
  save_directory: ./models/lit_vdcnn9-maxpool
  save_model_name: lit_vdcnn9_maxpool.pth
  evaluate: False
  save_every: 1
hyperparameters:
  alpha: 0.95
  beta: 0.05
  temperature: 6.0
  batch_size: 128
  data_loading_workers: 10
  momentum: 0.9
  weight_decay: 0.0001
  n_random_images: 0
"""


def test_the_lit_readme_config_maps_onto_every_setting():
    job = from_lit_yaml(yaml.safe_load(README_CONFIG))
    spec = build_spec(job.values)
    assert (spec.dataset, spec.model, job.teacher_model) == ("amazon_review_full", "vdcnn9", "vdcnn17")
    assert job.teacher_path == "./models/teachers/vdcnn17.pth" and job.init_path is None
    assert job.run_dir == "./models/lit_vdcnn9-maxpool"
    assert (spec.lit.epochs, spec.lit.lr, spec.lit.milestones, spec.lit.gamma) == (15, 0.01, [3, 6, 9, 12, 15], 0.5)
    assert (spec.lit.beta, spec.lit.combine, spec.lit.optimizer) == (0.05, "sections", "per_section")
    assert (spec.epochs, spec.lr, spec.milestones, spec.gamma, spec.schedule) == (10, 0.001, [3, 6, 9], 0.1, "multistep")
    assert (spec.kd.temperature, spec.kd.weight, spec.kd.soft_loss) == (6.0, 0.05, "cross_entropy")  # alpha 0.95: hard
    assert (spec.batch_size, spec.momentum, spec.nesterov, spec.weight_decay) == (128, 0.9, False, 0.0001)
    assert spec.augment is False and spec.selection == "best"
    noted = " ".join(job.notes)
    for key in ("logdir", "save_model_name", "save_every", "data_loading_workers", "n_random_images"):
        assert key in noted, key


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["hyperparameters"].update(gamma=0.2), "unknown key hyperparameters.gamma in the LIT config"),
    (lambda c: c.update(extra={}), "unknown key extra in the LIT config"),
    (lambda c: c["sequence"]["lit"].update(gamma=0.5), "unknown key sequence.lit.gamma"),
    (lambda c: c["params"].pop("save_every"), "the LIT config lacks params.save_every"),
    (lambda c: c["models"].update(training_architecture="vdcnn9-shortcut"), "only the max-pool VDCNN variants"),
    (lambda c: c["models"].update(base_architecture="alexnet"), "models.base_architecture: 'alexnet' is no architecture"),
    (lambda c: c["params"].update(evaluate=True), "params.evaluate: true only evaluates"),
])
def test_lit_config_errors_name_the_key(edit, message):
    config = yaml.safe_load(README_CONFIG)
    edit(config)
    with pytest.raises(ValueError, match=message):
        from_lit_yaml(config)


@pytest.mark.parametrize("freeze", [False, True])
def test_phase_two_trains_the_copied_ends_unless_asked_to_keep_them_frozen(tiny_dataset, tmp_path, freeze):
    """LIT's CIFAR script never re-enables the stem's and head's gradients; the intended method (and the VDCNN
    script) fine-tunes the whole student. Phase 1 keeps them frozen either way."""
    torch.manual_seed(0)
    teacher = create_model("resnet14", num_classes=10)
    save_model(tmp_path / "teacher.pt", teacher, "resnet14", {"num_classes": 10},
               extra={"dataset": "synthetic", "normalization": {"mean": [0.5] * 3, "std": [0.5] * 3}})
    spec = build_spec({"kind": "lit", "dataset": "synthetic", "model": "resnet8", "epochs": 1, "batch_size": 64,
                       "threads": 1, "eval_batch_size": 256, "kd": KD,
                       "lit": {"epochs": 1, "lr": 0.05, "beta": 0.75, "freeze_ends_in_full_model": freeze}})
    record = train(spec, tiny_dataset, tmp_path / "run", teacher_path=tmp_path / "teacher.pt")
    student = load_model(tmp_path / "run/model.pt")[0]
    ends = {f"{name}.{key}": value for name in ("stem", "head")
            for key, value in getattr(teacher, name).named_parameters()}
    trained = dict(student.named_parameters())
    assert set(record["lit"]["frozen_parameters"]) == set(ends)
    assert all(torch.equal(trained[key], value) for key, value in ends.items()) == freeze
    assert record["lit"]["freeze_ends_in_full_model"] is freeze


def test_the_script_refuses_a_teacher_file_of_another_architecture_than_the_yaml_names(tmp_path):
    save_model(tmp_path / "teacher.pt", create_model("resnet14", num_classes=10), "resnet14", {"num_classes": 10})
    info = model_file_info(tmp_path / "teacher.pt")
    assert info["name"] == "resnet14" and "state_dict" not in info
    config = yaml.safe_load(README_CONFIG)
    config["models"].update(dataset="synthetic", training_architecture="resnet8", base_architecture="resnet20",
                            base_model_path=str(tmp_path / "teacher.pt"))
    (tmp_path / "lit.yml").write_text(yaml.safe_dump(config))
    process = subprocess.run([sys.executable, str(REPO / "workflow_scripts/lit.py"), "--lit-config",
                              str(tmp_path / "lit.yml"), "--run-dir", str(tmp_path / "run")],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert process.returncode == 2
    assert "is a resnet14, but models.base_architecture asks for resnet20" in process.stderr
    assert not (tmp_path / "run").exists()
