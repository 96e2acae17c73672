"""The training-run spec: every knob of a teacher or student run, with its default, in one place.

A spec is built from defaults plus ``key=value`` overrides (``lr=0.1``, ``kd.temperature=4``,
``model_kwargs={"dropout": 0.3}``); values parse as JSON and fall back to a plain string.
Unknown keys and wrongly typed values are errors naming the key. The resolved spec is stored in
the checkpoint, model.pt and record.json; its hash identifies the run's configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from compresslib.activations import parse_activation
from compresslib.data.datasets import DATASETS
from compresslib.data.loader import HOLDOUT_SPLITS
from compresslib.lit import COMBINES
from compresslib.losses import KL_REDUCTIONS, SOFT_LOSSES
from compresslib.quantization.differentiable import POINT_INITS
from compresslib.quantization.shadow import SKIP_BY
from compresslib.quantization.uniform import check_settings
from compresslib.training.schedules import SCHEDULES

__all__ = ["KDSpec", "QuantSpec", "LitSpec", "TrainSpec", "SpecError", "build_spec", "build_settings", "format_overrides",
           "spec_hash", "RUNTIME_FIELDS", "TEACHER_OUTPUTS", "require"]

VALIDATION_POLICIES = ("test", "holdout")  # test-as-validation (the originals) or a held-out train split
SELECTIONS = ("final", "best")  # saved model: last epoch, or best validation accuracy
PRECISIONS = ("auto", "fp32", "bf16")
QUANT_METHODS = ("qd", "dq")  # trained quantization; post-training ("pm") quantization has no training run
LIT_OPTIMIZERS = ("per_section", "shared")  # LIT phase 1: one SGD per student section (VDCNN) or one for all (CIFAR)
TEACHER_OUTPUTS = ("online", "cached")  # KD logits: the teacher run on every batch, or looked up in its views table


class SpecError(ValueError):
    """A spec key or value is invalid; the message names the key and what is allowed."""


@dataclass
class KDSpec:
    temperature: float = 2.0  # softening temperature T (LMA and QD: 2)
    weight: float = 0.7  # weight of the soft teacher term; 1 - weight goes to the hard labels
    kl_reduction: str = "batchmean"  # "batchmean" (LMA) or "mean" (QD: averaged over batch x classes)
    soft_loss: str = "kl"  # "kl", or "cross_entropy" against the teacher's distribution (LIT's loss values)


@dataclass
class QuantSpec:
    """Quantized training: QD (full-precision shadow weights trained at their quantized point) or DQ (the
    quantization points of a trained model's tensors are learned; its weights stay fixed)."""

    method: str = "qd"  # "qd" (quantized distillation) or "dq" (differentiable quantization; needs an init model)
    bits: int = 4  # 2..8; DQ: the budget is 2**bits points per tensor on average
    bucket_size: int | None = 256  # elements per min-max bucket; null: one bucket per tensor
    stochastic: bool = False  # QD: stochastic instead of nearest rounding (off in every QD experiment)
    quantize_first_last: bool = False  # also quantize the first and last layer (QD's quantize_first_and_last_layer)
    skip_by: str = "layers"  # "layers": first/last conv or linear in forward order; "registration": the original's
    points_init: str = "quantiles"  # DQ: "quantiles" of each scaled tensor or "uniform" levels
    auto_bits: bool = True  # DQ: share the point budget between tensors by gradient norm
    gradient_batches: int = 5  # DQ auto_bits: training batches the gradient norms are averaged over (CNN: 5)


@dataclass
class LitSpec:
    """LIT's phase 1 (compresslib.lit): student sections trained on the teacher's section inputs, stem and head
    copied from the teacher and frozen. Phase 2 is the run's own ``epochs``, ``lr`` and schedule with ``kd``."""

    epochs: int = 15  # phase-1 epochs (VDCNN: 15; CIFAR: 175)
    lr: float = 0.01  # phase-1 initial learning rate
    milestones: list = field(default_factory=lambda: [3, 6, 9, 12, 15])  # 0-based phase-1 epochs where lr *= gamma
    gamma: float = 0.5  # phase-1 decay factor (VDCNN: 0.5; CIFAR: 0.1)
    beta: float = 0.05  # weight of the end-to-end KD term against the section MSEs (VDCNN: 0.05; CIFAR: 0.75)
    combine: str = "sections"  # "sections": beta*KD + (1-beta)*sum MSE (VDCNN); "halved": the same / 2 (CIFAR)
    optimizer: str = "per_section"  # "per_section" SGD (VDCNN) or one "shared" SGD over all sections (CIFAR)
    freeze_ends_in_full_model: bool = False  # keep the stem and head frozen in phase 2 (the CIFAR script's quirk)


@dataclass
class TrainSpec:
    # ---- what is trained -------------------------------------------------------------------
    dataset: str = "cifar10"  # name in compresslib.data.datasets.DATASETS
    model: str = "qd_conv_teacher"  # registered model name
    model_kwargs: dict = field(default_factory=dict)  # extra constructor arguments (e.g. dropout)
    activation: str = "relu"  # relu | prelu | swish | aplu<K> | lma<K>
    seed: int = 1  # seeds model init, batch order, augmentation and dropout
    # ---- optimisation (SGD) ----------------------------------------------------------------
    epochs: int = 200  # maximum epochs; the generic schedule may stop earlier
    batch_size: int = 64
    lr: float = 0.01  # initial learning rate
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 2.2e-4  # L2, coupled as in torch.optim.SGD
    schedule: str = "generic"  # generic | cifar100 | multistep | constant
    milestones: list = field(default_factory=list)  # multistep: 0-based epochs where lr *= gamma
    gamma: float = 0.1  # multistep decay factor
    # ---- data ------------------------------------------------------------------------------
    augment: bool = True  # random crop (pad 4) + horizontal flip on the training split
    mean: list | None = None  # normalisation; None = the dataset's recipe statistics
    std: list | None = None
    validation: str = "test"  # "test": the test set is the validation set (as the originals); "holdout"
    holdout_size: int = 5000  # images held out of the training split when validation == "holdout"
    holdout_seed: int = 0  # fixes which images are held out (same for every run that shares it)
    holdout_split: str = "random"  # "random" (holdout_seed), or "last": the last holdout_size images (ESNAC)
    eval_batch_size: int = 1000
    # ---- model selection -------------------------------------------------------------------
    selection: str = "final"  # model.pt holds the final epoch's weights, or the best validation epoch's
    # ---- distillation (students) -----------------------------------------------------------
    kd: KDSpec | None = None  # None trains on hard labels only
    teacher_outputs: str = "online"  # online: the teacher runs on every KD batch; cached: looked up per view
    # ---- quantization -----------------------------------------------------------------------
    quant: QuantSpec | None = None  # None trains full-precision weights
    # ---- LIT --------------------------------------------------------------------------------
    lit: LitSpec | None = None  # LIT phase 1 before the KD epochs above (needs kd and a teacher)
    # ---- runtime (not part of the run's identity) -------------------------------------------
    device: str = "auto"  # auto: cuda if available, else cpu
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool | None = None  # None: on for CUDA, off for CPU
    threads: int = 0  # torch intra-op threads on CPU; 0 leaves torch's default
    labels: dict = field(default_factory=dict)  # names used by result tables (dataset/teacher/student)

    def validate(self) -> None:
        """Check values beyond their types; raise SpecError naming the key."""
        require(self.dataset in DATASETS, "dataset", self.dataset, f"one of {', '.join(DATASETS)}")
        if DATASETS[self.dataset].kind == "text":  # character ids: nothing to augment, normalise or lay out
            require(not self.augment, "augment", self.augment, f"false for the text dataset {self.dataset}")
            require(self.mean is None and self.std is None, "mean/std", [self.mean, self.std],
                     f"null for the text dataset {self.dataset}")
            require(not self.channels_last, "channels_last", self.channels_last,
                     f"null or false for the text dataset {self.dataset}")
        require(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        require(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "an integer >= 1")
        require(self.lr > 0, "lr", self.lr, "a number > 0")
        require(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        require(self.gamma > 0, "gamma", self.gamma, "a number > 0")
        require(self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {', '.join(SCHEDULES)}")
        require(all(isinstance(m, int) and m >= 0 for m in self.milestones), "milestones", self.milestones,
                 "a list of integer epochs >= 0")
        require(self.validation in VALIDATION_POLICIES, "validation", self.validation,
                 f"one of {', '.join(VALIDATION_POLICIES)}")
        require(self.holdout_size >= 1, "holdout_size", self.holdout_size, "an integer >= 1")
        require(self.holdout_split in HOLDOUT_SPLITS, "holdout_split", self.holdout_split,
                 f"one of {', '.join(HOLDOUT_SPLITS)}")
        require(self.selection in SELECTIONS, "selection", self.selection, f"one of {', '.join(SELECTIONS)}")
        require(self.precision in PRECISIONS, "precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        require(self.threads >= 0, "threads", self.threads, "an integer >= 0")
        for key in ("mean", "std"):
            value = getattr(self, key)
            require(value is None or (len(value) == 3 and all(isinstance(v, (int, float)) for v in value)),
                     key, value, "null or a list of 3 numbers")
        require(self.std is None or all(v > 0 for v in self.std), "std", self.std, "positive numbers")
        try:
            parse_activation(self.activation)
        except ValueError as error:
            raise SpecError(f"activation: {error}") from None
        if self.kd is not None:
            require(self.kd.temperature > 0, "kd.temperature", self.kd.temperature, "a number > 0")
            require(0 <= self.kd.weight <= 1, "kd.weight", self.kd.weight, "a number in [0, 1]")
            require(self.kd.kl_reduction in KL_REDUCTIONS, "kd.kl_reduction", self.kd.kl_reduction,
                     f"one of {', '.join(KL_REDUCTIONS)}")
            require(self.kd.soft_loss in SOFT_LOSSES, "kd.soft_loss", self.kd.soft_loss,
                     f"one of {', '.join(SOFT_LOSSES)}")
        require(self.teacher_outputs in TEACHER_OUTPUTS, "teacher_outputs", self.teacher_outputs,
                f"one of {', '.join(TEACHER_OUTPUTS)}")
        if self.teacher_outputs == "cached":
            require(self.kd is not None, "teacher_outputs", self.teacher_outputs,
                    "online for a run without kd settings (only a distilled student reads a teacher's logits)")
            require(DATASETS[self.dataset].kind == "image", "teacher_outputs", self.teacher_outputs,
                    f"online for the text dataset {self.dataset} (views are crops and flips of images)")
            require(self.lit is None, "teacher_outputs", self.teacher_outputs,
                    "online for LIT (its phase 1 feeds the student the teacher's section outputs, which a views "
                    "table does not hold)")
            require(self.quant is None or self.quant.method != "dq", "teacher_outputs", self.teacher_outputs,
                    "online for quant.method=dq (its teacher is the init model itself, whose points it learns)")
        if self.quant is not None:
            try:
                check_settings(self.quant.bits, self.quant.bucket_size)
            except ValueError as error:
                raise SpecError(f"quant.{error}") from None
            require(self.quant.skip_by in SKIP_BY, "quant.skip_by", self.quant.skip_by, f"one of {', '.join(SKIP_BY)}")
            require(self.quant.method in QUANT_METHODS, "quant.method", self.quant.method,
                     f"one of {', '.join(QUANT_METHODS)}")
            require(self.quant.points_init in POINT_INITS, "quant.points_init", self.quant.points_init,
                     f"one of {', '.join(POINT_INITS)}")
            require(self.quant.gradient_batches >= 1, "quant.gradient_batches", self.quant.gradient_batches,
                     "an integer >= 1")
            require(not (self.quant.method == "dq" and self.quant.stochastic), "quant.stochastic",
                     self.quant.stochastic, "false for method dq (its points are nearest-assigned)")

        if self.lit is not None:
            if self.kd is None or self.quant is not None:
                raise SpecError("lit: LIT needs kd settings (both phases distil) and no quant settings")
            require(self.lit.epochs >= 1, "lit.epochs", self.lit.epochs, "an integer >= 1")
            require(self.lit.lr > 0, "lit.lr", self.lit.lr, "a number > 0")
            require(self.lit.gamma > 0, "lit.gamma", self.lit.gamma, "a number > 0")
            require(all(isinstance(m, int) and m >= 0 for m in self.lit.milestones), "lit.milestones",
                     self.lit.milestones, "a list of integer epochs >= 0")
            require(0 <= self.lit.beta <= 1, "lit.beta", self.lit.beta, "a number in [0, 1]")
            require(self.lit.combine in COMBINES, "lit.combine", self.lit.combine, f"one of {', '.join(COMBINES)}")
            require(self.lit.optimizer in LIT_OPTIMIZERS, "lit.optimizer", self.lit.optimizer,
                     f"one of {', '.join(LIT_OPTIMIZERS)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def identity(self) -> dict:
        """The fields that define the run's result (everything but runtime placement and labels)."""
        return {key: value for key, value in self.to_dict().items() if key not in RUNTIME_FIELDS}


RUNTIME_FIELDS = frozenset({"device", "precision", "channels_last", "threads", "labels"})


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SpecError(f"{key}: got {value!r}, expected {allowed}")


def build_spec(values: Mapping[str, Any] | None = None, overrides: Iterable[str] = ()) -> TrainSpec:
    """A validated TrainSpec from a (nested) dict of values plus ``key=value`` override strings."""
    return build_settings(TrainSpec, values, overrides)


def build_settings(cls: type, values: Mapping[str, Any] | None = None, overrides: Iterable[str] = ()) -> Any:
    """A validated settings dataclass (``cls`` has a ``validate`` method) from values plus ``key=value`` overrides."""
    data = json.loads(json.dumps(dict(values or {})))  # deep copy, JSON-typed
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SpecError(f"override {item!r} is not of the form key=value")
        target = data
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise SpecError(f"override {item!r}: {parent!r} is not a group of settings")
        target[leaf] = _parse_value(raw)
    settings = _from_dict(cls, data, prefix="")
    settings.validate()
    return settings


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _from_dict(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise SpecError(f"{prefix.rstrip('.') or 'spec'}: expected a mapping of settings, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SpecError(f"unknown setting {prefix + unknown[0]!r}; allowed: {', '.join(prefix + k for k in fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, prefix + name) for name, value in data.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise SpecError(f"{key}: may not be null")
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
            return _from_dict(option, value, prefix=key + ".")
        base = typing.get_origin(option) or option
        if base is bool and isinstance(value, bool):
            return value
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base in (str, list, dict) and isinstance(value, base):
            return value
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options if o is not type(None))
    raise SpecError(f"{key}: got {value!r}, expected {names}")


def format_overrides(values: Mapping[str, Any], prefix: str = "", cls: type | None = None) -> list[str]:
    """Inverse of :func:`build_spec`'s override parsing: ``{"kd": {"weight": 0.7}}`` -> ``["kd.weight=0.7"]``.

    Nested dataclass groups of ``cls`` (default TrainSpec) become dotted keys; dict-valued settings
    (``model_kwargs``, ``labels``) stay one JSON value. The order is sorted, so equal values always give the
    same arguments.
    """
    groups = _group_fields(cls or TrainSpec)
    items = []
    for key, value in sorted(values.items()):  # canonical: reordering YAML keys must not look like a change
        if not prefix and key in groups and isinstance(value, Mapping):
            items += format_overrides(value, prefix=f"{key}.", cls=cls)
        else:
            items.append(f"{prefix}{key}={json.dumps(value, sort_keys=True)}")
    return items


def _group_fields(cls: type) -> frozenset[str]:
    """Settings that are themselves a group of settings (a nested dataclass, e.g. ``kd``)."""
    hints = typing.get_type_hints(cls)
    return frozenset(name for name, hint in hints.items()
                     if dataclasses.is_dataclass(hint) or any(dataclasses.is_dataclass(o) for o in typing.get_args(hint)))


def spec_hash(spec: Any) -> str:
    """SHA-256 of the canonical JSON of the spec's identity fields."""
    canonical = json.dumps(spec.identity(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
