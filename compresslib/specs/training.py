"""The training-run spec: every knob of a teacher, student, quantized, LIT or ESNAC full-training run, with its
default and its allowed values, in one place (no torch: the workflow checks configs with it before any job).

A spec is built from defaults plus ``key=value`` overrides (``compresslib.settings``: ``lr=0.1``,
``kd.temperature=4``, ``model_kwargs={"dropout": 0.3}``). Unknown keys and wrongly typed values are errors naming
the key. The resolved spec is stored in the checkpoint, model.pt and record.json; its hash identifies the run's
configuration. ``kind`` says what the run is (the record's kind); the other settings must fit it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compresslib.activation_tags import parse_activation
from compresslib.catalog import DATASETS, HOLDOUT_SPLITS
from compresslib.specs.quantization import QuantSpec
from compresslib.schedules import SCHEDULES
from compresslib.settings import (Settings, SpecError, build_settings, check_kd, check_kind, check_runtime, require,
                                  require_choice)

__all__ = ["KDSpec", "LitSpec", "TrainSpec", "PostTrainingSpec", "build_spec", "total_epochs", "KIND_GROUPS",
           "TEACHER_OUTPUTS", "KL_REDUCTIONS", "SOFT_LOSSES", "LIT_COMBINES", "ESNAC_MODEL"]

# per kind (the record's kind): the groups of settings it needs, and those it may have
KIND_GROUPS = {"teacher": ((), ()), "undistilled": ((), ()), "distill": (("kd",), ("kd",)),
                "quantize": (("quant",), ("quant", "kd")), "lit": (("lit", "kd"), ("lit", "kd")), "esnac": ((), ())}
ESNAC_MODEL = "esnac_net"  # the compressed networks ESNAC's search writes (compresslib.models.graph_layers)
VALIDATION_POLICIES = ("test", "holdout")  # test-as-validation (the originals) or a held-out train split
SELECTIONS = ("final", "best")  # saved model: last epoch, or best validation accuracy
TRAINED_QUANT_METHODS = ("qd", "dq")  # post-training ("pm") quantization has no training run
LIT_OPTIMIZERS = ("per_section", "shared")  # LIT phase 1: one SGD per student section (VDCNN) or one for all (CIFAR)
LIT_COMBINES = ("sections", "halved")  # LIT phase 1's objective: beta*KD + (1-beta)*sum MSE, or that halved
TEACHER_OUTPUTS = ("online", "cached")  # KD logits: the teacher run on every batch, or looked up in its views table
KL_REDUCTIONS = ("batchmean", "mean")  # compresslib.losses.kd_loss: per example (LMA), or per element (QD)
SOFT_LOSSES = ("kl", "cross_entropy")  # the soft term: KL, or LIT's cross-entropy against the teacher


@dataclass
class KDSpec:
    temperature: float = 2.0  # softening temperature T (LMA and QD: 2)
    weight: float = 0.7  # weight of the soft teacher term; 1 - weight goes to the hard labels
    kl_reduction: str = "batchmean"  # "batchmean" (LMA) or "mean" (QD: averaged over batch x classes)
    soft_loss: str = "kl"  # "kl", or "cross_entropy" against the teacher's distribution (LIT's loss values)


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
class TrainSpec(Settings):
    # ---- what is trained -------------------------------------------------------------------
    kind: str = "teacher"  # teacher | undistilled | distill | quantize | lit | esnac (the record's kind)
    dataset: str = "cifar10"  # name in compresslib.catalog.DATASETS
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
    schedule: str = "generic"  # generic | cifar100 | multistep | constant | cosine
    milestones: list = field(default_factory=list)  # multistep: 0-based epochs where lr *= gamma
    gamma: float = 0.1  # multistep decay factor
    warmup_epochs: int = 0  # cosine: epochs of linear warmup to lr (whole epochs: the spec can check it fits)
    lr_floor_fraction: float = 0.0  # cosine: the rate the decay ends at, as a fraction of lr (so lr sweeps keep it)
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
    compile: str = "auto"  # auto | on | off: torch.compile of the trained model and an online teacher; auto: CUDA only
    threads: int = 0  # torch intra-op threads on CPU; 0 leaves torch's default
    labels: dict = field(default_factory=dict)  # names used by result tables (dataset/teacher/student)

    ADDED_FIELDS = frozenset({"warmup_epochs", "lr_floor_fraction"})  # the cosine schedule came after the first runs

    def validate(self) -> None:
        """Check values beyond their types; raise SpecError naming the key."""
        require_choice("dataset", self.dataset, DATASETS)
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
        require_choice("schedule", self.schedule, SCHEDULES)
        require(all(isinstance(m, int) and m >= 0 for m in self.milestones), "milestones", self.milestones,
                 "a list of integer epochs >= 0")
        _check_cosine(self)
        require_choice("validation", self.validation, VALIDATION_POLICIES)
        require(self.holdout_size >= 1, "holdout_size", self.holdout_size, "an integer >= 1")
        require_choice("holdout_split", self.holdout_split, HOLDOUT_SPLITS)
        require_choice("selection", self.selection, SELECTIONS)
        check_runtime(self)
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
            check_kd(self.kd)
            require_choice("kd.kl_reduction", self.kd.kl_reduction, KL_REDUCTIONS)
            require_choice("kd.soft_loss", self.kd.soft_loss, SOFT_LOSSES)
        require_choice("teacher_outputs", self.teacher_outputs, TEACHER_OUTPUTS)
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
            self.quant.validate(TRAINED_QUANT_METHODS)
        if self.lit is not None:
            if self.kd is None or self.quant is not None:
                raise SpecError("lit: LIT needs kd settings (both phases distil) and no quant settings")
            require(self.lit.epochs >= 1, "lit.epochs", self.lit.epochs, "an integer >= 1")
            require(self.lit.lr > 0, "lit.lr", self.lit.lr, "a number > 0")
            require(self.lit.gamma > 0, "lit.gamma", self.lit.gamma, "a number > 0")
            require(all(isinstance(m, int) and m >= 0 for m in self.lit.milestones), "lit.milestones",
                     self.lit.milestones, "a list of integer epochs >= 0")
            require(0 <= self.lit.beta <= 1, "lit.beta", self.lit.beta, "a number in [0, 1]")
            require_choice("lit.combine", self.lit.combine, LIT_COMBINES)
            require_choice("lit.optimizer", self.lit.optimizer, LIT_OPTIMIZERS)
        check_kind(self, KIND_GROUPS)
        require((self.kind == "esnac") == (self.model == ESNAC_MODEL), "kind", self.kind,
                f"esnac exactly for the model {ESNAC_MODEL} (the full training of an architecture ESNAC found)")


def _check_cosine(spec: TrainSpec) -> None:
    """The cosine schedule's settings: a warmup shorter than the run, a floor below lr; none for another schedule,
    which would ignore them."""
    if spec.schedule != "cosine":
        for key in ("warmup_epochs", "lr_floor_fraction"):
            require(getattr(spec, key) == 0, key, getattr(spec, key),
                    f"0 unless schedule is cosine (the {spec.schedule} schedule has no warmup or floor)")
        return
    require(0 <= spec.warmup_epochs < spec.epochs, "warmup_epochs", spec.warmup_epochs,
            f"an integer from 0 to epochs - 1 = {spec.epochs - 1} (the cosine decay needs at least one epoch)")
    require(0 <= spec.lr_floor_fraction < 1, "lr_floor_fraction", spec.lr_floor_fraction,
            "a number in [0, 1) (the final rate as a fraction of lr)")


def build_spec(values: dict | None = None, overrides: tuple[str, ...] | list[str] = ()) -> TrainSpec:
    """A validated TrainSpec from a (nested) dict of values plus ``key=value`` override strings."""
    return build_settings(TrainSpec, values, overrides)


def total_epochs(identity: dict) -> int:
    """The epochs a run trains in all, from its identity (``TrainSpec.identity()``, or a translation spec's, which
    has no ``lit``): LIT's phase 1, then the run's own ``epochs``. A dict, so ``status`` reads it from a state file."""
    return identity["epochs"] + (identity.get("lit") or {}).get("epochs", 0)


@dataclass
class PostTrainingSpec(Settings):
    """A post-training ("PM") quantization: a trained full-precision model rounded onto its grids, no training
    (compresslib.training.post_training). Its dataset, normalisation and labels are the trained model's."""

    quant: QuantSpec = field(default_factory=lambda: QuantSpec(method="pm"))  # method pm: bits, bucket, layers
    eval_batch_size: int = 1000
    # ---- runtime (not part of the run's identity) -------------------------------------------
    device: str = "auto"
    threads: int = 0

    def validate(self) -> None:
        self.quant.validate(("pm",))
        require(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "an integer >= 1")
        check_runtime(self)
