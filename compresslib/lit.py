"""LIT: learned intermediate-representation training (Koratana et al., ICML 2019; seeds.md §4.2).

Teacher and student are :class:`compresslib.models.sections.SectionedNet` models of one family: the same
stem and head, fewer blocks per section in the student. Phase 1 trains every student section on the
teacher's input to that section (``h_{i-1}``) to reproduce the teacher's output of it (``h_i``, MSE), so
the sections learn independently, while a KD term on the student's own end-to-end output keeps the whole
network in view; β balances the two. The stem and head are copied from the teacher and frozen. Phase 2
is plain full-model KD (compresslib.losses.kd_loss).

The originals combine the phase-1 terms in two ways (``combine``):

* ``"sections"`` (VDCNN): each section minimises ``(1 - β)·MSE_i`` and the shared term is ``β·L_KD``,
  i.e. ``β·L_KD + (1 - β)·Σ MSE_i`` over all sections;
* ``"halved"`` (CIFAR): ``(β·L_KD + (1 - β)·Σ MSE_i) / 2``.

A student section's MSE depends on no other section's parameters, so both give each section the gradient
its own optimiser saw in the original. ``per_section`` optimisers (VDCNN) are one SGD per section, as the
original steps them; ``shared`` (CIFAR) is one SGD over all sections. With equal hyperparameters the two
take the same steps: the original's per-section optimisers exist to run sections on separate GPUs.

The training run itself (phases, optimisers, schedules, checkpoints, resume across the phase boundary) is
compresslib.training.loop with ``spec.lit`` set; this module holds what is specific to LIT.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compresslib.catalog import get_dataset_info, is_model
from compresslib.losses import kd_loss
from compresslib.models.sections import SectionedNet
from compresslib.specs.training import LIT_COMBINES

__all__ = ["LitYamlJob", "from_lit_yaml", "PhaseOneLoss", "check_pair", "copy_and_freeze_ends", "keep_ends_frozen",
           "phase_one_loss", "phase_one_parameter_sets", "train_phase_one_epoch", "section_mse"]


@dataclass(frozen=True)
class PhaseOneLoss:
    """The phase-1 objective and its parts (detached parts, for logging per section)."""

    total: torch.Tensor
    kd: torch.Tensor
    sections: list[torch.Tensor]
    logits: torch.Tensor  # the student's own end-to-end output (detached)


def check_pair(teacher: nn.Module, student: nn.Module, example: torch.Tensor) -> None:
    """Raise ValueError unless the two models can be trained with LIT: same section count and boundary shapes.

    The check runs in eval mode (no BatchNorm statistic moves) and leaves every module's mode as it was.
    """
    for role, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, SectionedNet):
            raise ValueError(f"LIT needs models with stem / sections / head; the {role} is {type(model).__name__}")
    if len(teacher.sections) != len(student.sections):
        raise ValueError(f"the teacher has {len(teacher.sections)} sections, the student {len(student.sections)}")
    with torch.no_grad(), _eval_mode(teacher, student):
        teacher_outputs = teacher.section_outputs(example)
        if student.stem(example).shape != teacher_outputs[0].shape:
            raise ValueError("teacher and student differ at the stem output")
        for index, section in enumerate(student.sections):
            try:
                shape = section(teacher_outputs[index]).shape
            except RuntimeError as error:  # e.g. a convolution expecting other channels
                raise ValueError(f"student section {index} cannot take the teacher's input to it: {error}") from None
            if shape != teacher_outputs[index + 1].shape:
                raise ValueError(f"teacher and student differ at the output of section {index}: "
                                 f"{tuple(teacher_outputs[index + 1].shape)} vs {tuple(shape)}")


@contextlib.contextmanager
def _eval_mode(*models: nn.Module) -> Iterator[None]:
    modes = [(module, module.training) for model in models for module in model.modules()]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def copy_and_freeze_ends(teacher: SectionedNet, student: SectionedNet) -> list[str]:
    """Copy the teacher's stem and head into the student and freeze them (parameters and BatchNorm statistics).

    Returns the names of the frozen parameters. The frozen modules are put in eval mode; call
    :func:`keep_ends_frozen` after ``student.train()`` to keep them there.
    """
    frozen = []
    for name in ("stem", "head"):
        source, target = getattr(teacher, name), getattr(student, name)
        target.load_state_dict(source.state_dict())
        target.requires_grad_(False).eval()
        frozen += [f"{name}.{parameter}" for parameter, _ in target.named_parameters()]
    return frozen


def keep_ends_frozen(student: SectionedNet) -> None:
    """Put the frozen stem and head back in eval mode (``student.train()`` switched every module)."""
    student.stem.eval()
    student.head.eval()


def phase_one_loss(teacher: SectionedNet, student: SectionedNet, inputs: torch.Tensor, targets: torch.Tensor, *,
                   beta: float, combine: str, temperature: float, weight: float, kl_reduction: str = "batchmean",
                   soft_loss: str = "kl") -> PhaseOneLoss:
    """LIT's phase-1 objective for one batch (see the module docstring); the teacher runs without gradients."""
    if combine not in LIT_COMBINES:
        raise ValueError(f"combine must be one of {', '.join(LIT_COMBINES)}, got {combine!r}")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    with torch.no_grad():
        teacher_outputs = teacher.section_outputs(inputs)
        teacher_logits = teacher.forward_head(teacher_outputs[-1])
    sections = [F.mse_loss(section(teacher_outputs[index]).float(), teacher_outputs[index + 1].float())
                for index, section in enumerate(student.sections)]
    logits = student(inputs)
    kd = kd_loss(logits, targets, teacher_logits, temperature=temperature, weight=weight,
                 kl_reduction=kl_reduction, soft_loss=soft_loss)
    total = beta * kd + (1 - beta) * torch.stack(sections).sum()
    if combine == "halved":
        total = total / 2
    return PhaseOneLoss(total, kd.detach(), [loss.detach() for loss in sections], logits.detach())


def phase_one_parameter_sets(student: SectionedNet, optimizer: str) -> list[list[nn.Parameter]]:
    """The parameters of each phase-1 optimiser: one set per section (``per_section``) or one (``shared``)."""
    sets = [list(section.parameters()) for section in student.sections]
    if optimizer == "per_section":
        return sets
    if optimizer == "shared":
        return [[parameter for section_set in sets for parameter in section_set]]
    raise ValueError(f"optimizer must be per_section or shared, got {optimizer!r}")


def train_phase_one_epoch(teacher: SectionedNet, student: SectionedNet, loader: Iterable,
                          optimizers: list[torch.optim.Optimizer], *, beta: float, combine: str, kd: Mapping,
                          autocast: torch.autocast) -> tuple[float, float, list[float]]:
    """One phase-1 epoch: ``(mean objective, student accuracy, mean MSE per section)``; ``kd`` holds
    compresslib.losses.kd_loss's keywords. Sums stay on the device and are read once (one host sync)."""
    student.train()
    keep_ends_frozen(student)
    device = next(student.parameters()).device
    loss_sum = torch.zeros((), device=device)
    section_sums = torch.zeros(len(student.sections), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    for inputs, targets in loader:
        with autocast:
            loss = phase_one_loss(teacher, student, inputs, targets, beta=beta, combine=combine, **kd)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        for optimizer in optimizers:
            optimizer.step()
        loss_sum += loss.total.detach() * len(targets)
        section_sums += torch.stack(loss.sections) * len(targets)
        correct += (loss.logits.argmax(1) == targets).sum()
        seen += len(targets)
    return loss_sum.item() / seen, correct.item() / seen, (section_sums / seen).tolist()


@torch.inference_mode()
def section_mse(teacher: SectionedNet, student: SectionedNet, loader: Iterable,
                autocast: torch.autocast) -> list[float]:
    """Mean MSE per section of the student's sections fed the teacher's inputs, over ``loader`` (eval mode)."""
    device = next(student.parameters()).device
    sums = torch.zeros(len(student.sections), device=device)
    seen = 0
    with _eval_mode(teacher, student), autocast:
        for inputs, _ in loader:
            teacher_outputs = teacher.section_outputs(inputs)
            sums += torch.stack([F.mse_loss(section(teacher_outputs[index]).float(),
                                            teacher_outputs[index + 1].float())
                                 for index, section in enumerate(student.sections)]) * len(inputs)
            seen += len(inputs)
    return (sums / seen).tolist()


# The original trainlit.py's YAML (README of stanford-futuredata/lit-code vdcnn/): every key it reads.
LIT_YAML_KEYS = {
    "models": ("dataset", "training_architecture", "training_checkpoint", "base_architecture", "base_model_path"),
    "sequence": ("lit", "full_model"),
    "params": ("logdir", "save_directory", "save_model_name", "evaluate", "save_every"),
    "hyperparameters": ("alpha", "beta", "temperature", "batch_size", "data_loading_workers", "momentum",
                        "weight_decay", "n_random_images"),
}
LIT_YAML_PHASE_KEYS = ("epochs", "lr", "milestones")


@dataclass(frozen=True)
class LitYamlJob:
    """A LIT run described by an original LIT YAML file."""

    values: dict  # TrainSpec values
    teacher_path: str  # models.base_model_path: a compresslib model.pt
    teacher_model: str  # registered model name the teacher must be (models.base_architecture)
    init_path: str | None  # models.training_checkpoint: the student's starting weights
    run_dir: str  # params.save_directory
    notes: list[str]  # keys that have no effect here, and why


def from_lit_yaml(config: Mapping) -> LitYamlJob:
    """Map an original LIT YAML config onto a TrainSpec's values; any key the original does not read is an error.

    What the original fixes in code is fixed here too: KD as its ``AlphaDistillationLoss`` (α on the hard term,
    the soft term a cross-entropy, per example), phase 1 with one SGD per section whose rate halves at the
    milestones and ``sections`` combination, phase 2 one SGD with MultiStepLR(γ 0.1), plain momentum (no
    Nesterov), the best test-accuracy epoch kept. Architecture names ``vdcnnN-maxpool`` are our ``vdcnnN``.
    """
    _check_keys(config, LIT_YAML_KEYS, "")
    for group, keys in LIT_YAML_KEYS.items():
        _check_keys(config[group], keys, f"{group}.")
    models, sequence, params, hyper = (config[group] for group in LIT_YAML_KEYS)
    for phase in LIT_YAML_KEYS["sequence"]:
        _check_keys(sequence[phase], LIT_YAML_PHASE_KEYS, f"sequence.{phase}.")
    if params["evaluate"]:
        raise ValueError("params.evaluate: true only evaluates a trained model in the original; this script trains. "
                         "A finished run's record.json holds its test accuracy")
    info = get_dataset_info(models["dataset"])
    student, teacher = (_architecture(models[key], f"models.{key}")
                        for key in ("training_architecture", "base_architecture"))
    lit_phase, full_model = sequence["lit"], sequence["full_model"]
    values = {
        "kind": "lit", "dataset": models["dataset"], "model": student, "activation": "relu",
        "epochs": full_model["epochs"], "lr": full_model["lr"], "milestones": list(full_model["milestones"]),
        "schedule": "multistep", "gamma": 0.1,
        "batch_size": hyper["batch_size"], "momentum": hyper["momentum"], "nesterov": False,
        "weight_decay": hyper["weight_decay"], "selection": "best",
        "kd": {"temperature": hyper["temperature"], "weight": round(1 - hyper["alpha"], 12),
               "kl_reduction": "batchmean", "soft_loss": "cross_entropy"},
        "lit": {"epochs": lit_phase["epochs"], "lr": lit_phase["lr"], "milestones": list(lit_phase["milestones"]),
                "gamma": 0.5, "beta": hyper["beta"], "combine": "sections", "optimizer": "per_section"},
    }
    if info.kind == "text":
        values["augment"] = False
    notes = [
        f"params.logdir ({params['logdir']}): no TensorBoard; the run directory's history.csv holds the section and "
        "full-model losses per epoch",
        f"params.save_model_name ({params['save_model_name']}): the model is <run dir>/model.pt",
        f"params.save_every ({params['save_every']}): a checkpoint is written every epoch",
        f"hyperparameters.data_loading_workers ({hyper['data_loading_workers']}): the data lives on the device; "
        "there are no loader workers",
        f"hyperparameters.n_random_images ({hyper['n_random_images']}): read by nothing in the original either",
    ]
    return LitYamlJob(values, str(models["base_model_path"]), teacher, models["training_checkpoint"] or None,
                      str(params["save_directory"]), notes)


def _check_keys(section: object, allowed: Iterable[str], prefix: str) -> None:
    if not isinstance(section, Mapping):
        raise ValueError(f"{prefix.rstrip('.') or 'the LIT config'}: expected a mapping, got {section!r}")
    unknown, missing = sorted(set(section) - set(allowed)), [key for key in allowed if key not in section]
    if unknown:
        raise ValueError(f"unknown key {prefix}{unknown[0]} in the LIT config; allowed here: "
                         f"{', '.join(prefix + key for key in allowed)}")
    if missing:
        raise ValueError(f"the LIT config lacks {prefix}{missing[0]}")


def _architecture(name: str, key: str) -> str:
    """The original's architecture name as a registered model: ``vdcnn9-maxpool`` -> ``vdcnn9``."""
    model = name.removesuffix("-maxpool") if name.startswith("vdcnn") else name
    if name.startswith("vdcnn") and not name.endswith("-maxpool"):
        raise ValueError(f"{key}: {name!r}: only the max-pool VDCNN variants (vdcnnN-maxpool) are implemented")
    if not is_model(model):
        raise ValueError(f"{key}: {name!r} is no architecture here (vdcnn9/17/29/49-maxpool, resnet20..resnet110)")
    return model
