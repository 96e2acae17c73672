"""One training loop for teachers, distilled and quantized students, and LIT students.

Read top to bottom: resolve the spec -> place the job (the GPU it was given, a leased free GPU, or the
CPU; the run lifecycle of compresslib.runs) -> data on the device -> teacher (students: the model, or with
teacher_outputs=cached its views table) -> model (LIT: the teacher's stem
and head, frozen), quantizer -> resume from the run directory's checkpoint -> epochs, phase by phase (one
phase; LIT: blockwise phase 1, then full-model KD), each phase with its own optimisers and schedule
(train, evaluate, schedule, history row, checkpoint) -> select the weights -> model.pt, history.csv,
record.json (written last: its presence means "finished"). The record's kind is the spec's ``kind``.

Hot loop: forward, loss, backward, step. Loss and correct counts accumulate as device tensors and are
read once per epoch (one host sync), as in airbench. Every epoch reseeds torch from (seed, epoch) and
the loader draws its order and augmentation from the same pair, so an interrupted run resumed from its
checkpoint produces bit-identical numbers on CPU. The trained model and an online teacher run compiled as
``spec.compile`` asks (compresslib.training.compiled: static shapes, eager where compiling fails).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from compresslib.activation_tags import parse_activation
from compresslib.catalog import get_dataset_info
from compresslib.data.datasets import load_dataset
from compresslib.data.loader import DeviceLoader, epoch_seed, holdout_split
from compresslib.devices import evaluation_batch_size
from compresslib.lit import check_pair, copy_and_freeze_ends, phase_one_parameter_sets, section_mse, \
    train_phase_one_epoch
from compresslib.losses import kd_loss
from compresslib.models import create_model, load_model, model_facts, model_file_info, save_model
from compresslib.quantization.differentiable import LearnedPointsQuantizer, allocate_points, gradient_norms
from compresslib.quantization.pack import PACKED_NAME, pack_and_measure
from compresslib.quantization.shadow import ShadowQuantizer, quantized_parameter_names
from compresslib.runs.lifecycle import Run, TrainingDiverged, cpu_state, write_history
from compresslib.runs.progress import Progress
from compresslib.runs.record import HISTORY_NAME, MODEL_NAME
from compresslib.schedules import Schedule, build_schedule
from compresslib.settings import spec_hash
from compresslib.specs.training import ESNAC_MODEL, TrainSpec, total_epochs
from compresslib.training.compiled import CompiledModels, training_models
from compresslib.training.teacher_views import TeacherViews

__all__ = ["train", "train_epoch", "evaluate", "HISTORY_COLUMNS"]

log = logging.getLogger(__name__)

OUTPUTS = (MODEL_NAME, HISTORY_NAME, PACKED_NAME)  # what a run writes besides its record
# lr: the epoch's rate; for the per-step cosine schedule, the rate of its first step
HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                   "train_seconds", "eval_seconds", "examples_per_s")


def train(spec: TrainSpec, data_path: str | Path, run_dir: str | Path, teacher_path: str | Path | None = None,
          command: list[str] | None = None, init_path: str | Path | None = None,
          teacher_views_path: str | Path | None = None, overwrite: bool = False) -> dict:
    """Run (or resume) one training job; write model.pt, history.csv and record.json into ``run_dir``.

    With ``teacher_path`` the run distils from that teacher with ``spec.kd`` (and ``spec.lit``: LIT's two
    phases); without it, it trains on the hard labels. ``init_path`` starts from a trained model's weights
    (differentiable quantization needs one: it learns that model's quantization points; LIT may take one).
    With ``spec.teacher_outputs == "cached"`` the KD logits come from ``teacher_views_path``, a views file made
    from exactly that teacher file and dataset file (compresslib.training.teacher_views), and the teacher
    itself is never loaded. A quantized run also writes ``model.packed``. The run folder and the device (a leased
    GPU) are held for the whole run; ``overwrite`` replaces a finished run there. Returns the record.
    """
    run = Run(run_dir, command, identity=spec.identity(), outputs=OUTPUTS, overwrite=overwrite)
    spec.validate()
    if (teacher_path is None) != (spec.kd is None):
        raise ValueError("a student run needs both a teacher model and kd settings; a teacher run neither "
                         f"(teacher model: {teacher_path}, kd: {spec.kd})")
    learns_points = spec.quant is not None and spec.quant.method == "dq"
    takes_init = learns_points or spec.kind in ("lit", "esnac")
    if (learns_points and init_path is None) or (init_path is not None and not takes_init):
        raise ValueError("differentiable quantization (quant.method=dq) learns the points of a trained model: it "
                         f"needs an init model; only it, LIT and ESNAC's full training ({ESNAC_MODEL}) take one "
                         f"(init model: {init_path}, quant: {spec.quant}, lit: {spec.lit}, model: {spec.model})")
    if teacher_views_path is None and spec.teacher_outputs == "cached":
        raise ValueError("teacher_outputs=cached reads the teacher's logits from its views file "
                         "(workflow_scripts/teacher_views.py), but none was given (train.py --teacher-views)")
    if teacher_views_path is not None and spec.teacher_outputs != "cached":
        raise ValueError(f"teacher-views file {teacher_views_path} was given, but teacher_outputs is "
                         f"{spec.teacher_outputs!r} (the teacher runs on every batch); set teacher_outputs=cached")

    run.check_inputs(data=data_path, teacher=teacher_path, init=init_path, teacher_views=teacher_views_path)
    # character ids in (N, L) have no image memory layout
    images = get_dataset_info(spec.dataset).kind == "image"
    with run.owned() as finished:
        if finished is not None:
            return finished
        with run.placed(spec.device, spec.threads, spec.precision, spec.channels_last, images):
            return _train_placed(spec, run, data_path, teacher_path, init_path, teacher_views_path)


def _train_placed(spec: TrainSpec, run: Run, data_path: str | Path, teacher_path: str | Path | None,
                  init_path: str | Path | None, teacher_views_path: str | Path | None) -> dict:
    device, run_dir = run.device, run.run_dir
    info = get_dataset_info(spec.dataset)
    precision = run.precision
    autocast, memory_format, channels_last = precision.autocast, precision.memory_format, precision.channels_last
    if device.type == "cuda":  # cuDNN picks the fastest kernel per shape; GPU runs are not bit-reproducible anyway
        torch.backends.cudnn.benchmark = True

    # ---- data ----------------------------------------------------------------------------------
    dataset = load_dataset(data_path)
    if dataset["name"] != spec.dataset:
        raise ValueError(f"{data_path} holds dataset {dataset['name']!r}, but the spec asks for {spec.dataset!r}")
    data_file = run.input_file(data_path, **dataset["provenance"])
    mean, std = spec.mean or info.mean, spec.std or info.std  # None for text: character ids, no normalisation
    mean, std = (list(mean) if mean is not None else None), (list(std) if std is not None else None)
    normalization = {"mean": mean, "std": std}
    train_inputs, train_labels = dataset["train_inputs"], dataset["train_labels"]
    test_inputs, test_labels = dataset["test_inputs"], dataset["test_labels"]
    loader_args = dict(mean=mean, std=std, device=device, channels_last=channels_last)
    train_examples = torch.arange(len(train_labels))  # the trained examples' indices in the dataset's training split
    if spec.validation == "holdout":
        train_examples, held_out = holdout_split(len(train_labels), spec.holdout_size, spec.holdout_seed,
                                                 spec.holdout_split)
        val_inputs, val_labels = train_inputs[held_out], train_labels[held_out]
        train_inputs, train_labels = train_inputs[train_examples], train_labels[train_examples]
    train_loader = DeviceLoader(train_inputs, train_labels, batch_size=spec.batch_size, augment=spec.augment,
                                shuffle=True, seed=spec.seed,
                                # the partial last batch is kept, as the originals did (compiled: a second static
                                # graph), but BatchNorm cannot train on a final batch of one example
                                drop_last=len(train_labels) % spec.batch_size == 1, **loader_args)
    eval_batch = evaluation_batch_size(spec.eval_batch_size, device)
    eval_loaders = {"test": DeviceLoader(test_inputs, test_labels, batch_size=eval_batch,
                                         augment=False, shuffle=False, **loader_args)}
    if spec.validation == "holdout":
        eval_loaders["val"] = DeviceLoader(val_inputs, val_labels, batch_size=eval_batch,
                                           augment=False, shuffle=False, **loader_args)

    # ---- teacher ---------------------------------------------------------------------------------
    teacher, teacher_info, views, views_info = None, None, None, None
    if teacher_path is not None:
        if teacher_views_path is not None:  # cached: the teacher file is checked and recorded, never loaded
            teacher_meta = model_file_info(teacher_path)
        else:
            teacher, teacher_meta = load_model(teacher_path, device)
            teacher.eval().requires_grad_(False).to(memory_format=memory_format)
        if teacher_meta.get("dataset") != spec.dataset or teacher_meta.get("normalization") != normalization:
            raise ValueError(f"teacher {teacher_path} was trained on {teacher_meta.get('dataset')!r} with "
                             f"normalisation {teacher_meta.get('normalization')}, the student uses "
                             f"{spec.dataset!r} with {normalization}; they must see the same inputs")
        teacher_info = run.input_file(teacher_path, name=teacher_meta["name"], spec_hash=teacher_meta.get("spec_hash"))
    if teacher_views_path is not None:
        views = TeacherViews.load(teacher_views_path, device, teacher_sha256=teacher_info["sha256"],
                                  dataset_sha256=data_file["sha256"], normalization=normalization)
        if (train_loader.augment and not views.augment) or (views.augment and views.pad != train_loader.pad):
            raise ValueError(f"teacher-views file {teacher_views_path} holds {_seen(views.augment, views.pad)}, but "
                             f"this run trains on {_seen(train_loader.augment, train_loader.pad)}")
        views_info = run.input_file(teacher_views_path)
        train_examples = train_examples.to(device)

    # ---- model, quantizer, optimiser, schedule -----------------------------------------------------
    model_kwargs = {"num_classes": info.num_classes, "activation": spec.activation, **spec.model_kwargs}
    torch.manual_seed(spec.seed)
    model = create_model(spec.model, **model_kwargs).to(device, memory_format=memory_format)
    init_info = None
    if init_path is not None:
        init_info = _load_init(model, run.input_file(init_path), spec.model, model_kwargs)
    example = next(iter(eval_loaders["test"]))[0][:2]  # shapes and dtype of real inputs, for model checks
    frozen = []
    if spec.lit is not None:  # phase 1 starts from the teacher's stem and head (a checkpoint's weights follow)
        check_pair(teacher, model, example)
        frozen = copy_and_freeze_ends(teacher, model)
    checkpoint = run.resume()
    quantizer, trainable = None, list(model.parameters())
    if spec.quant is not None:
        names = quantized_parameter_names(model, example, spec.quant.quantize_first_last, spec.quant.skip_by)
        if spec.quant.method == "qd":  # the parameters live in full precision and are used at their quantized point
            quantizer = ShadowQuantizer(model, names, spec.quant.bits, spec.quant.bucket_size, spec.quant.stochastic)
        else:  # the weights stay; each tensor's points are learned
            counts = checkpoint["points_per_tensor"] if checkpoint is not None else \
                _point_counts(spec, model, names, train_loader, autocast)
            quantizer = LearnedPointsQuantizer(model, names, counts, spec.quant.bucket_size, spec.quant.points_init)
            trainable = quantizer.parameters()

    # ---- resume ------------------------------------------------------------------------------------
    history: list[dict] = []
    best_state = None  # weights of the best validation epoch, kept only when the run selects them
    start_epoch, stopped_early, schedule_state = 0, False, None
    compile_used: list[str] = []  # what each earlier session that trained an epoch ran: CompiledModels.used
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        history, best_state = checkpoint["history"], checkpoint["best_state"]
        start_epoch, stopped_early = checkpoint["next_epoch"], checkpoint["stopped_early"]
        schedule_state = checkpoint["schedule"]
        compile_used = checkpoint.get("compile_used", [])  # absent from checkpoints written before it was recorded
        log.info("resuming %s from its checkpoint at epoch %d", run_dir, start_epoch + 1)
    run.begin_session(start_epoch=start_epoch)
    models = training_models(spec, model, teacher, device)

    # ---- epochs ------------------------------------------------------------------------------------
    # KDSpec's fields are kd_loss's keywords; without a teacher kd_loss is plain cross-entropy.
    kd_kwargs = dataclasses.asdict(spec.kd) if spec.kd is not None else {}
    loss_fn = functools.partial(kd_loss, **kd_kwargs)
    phases = _phases(spec)
    epoch_total = phases[-1].end
    phase, optimizers, schedule = None, [], None

    for epoch in range(start_epoch, epoch_total):
        if stopped_early:
            break
        if phase is None or epoch == phase.end:  # a fresh optimiser and schedule per phase
            phase = next(p for p in phases if p.start <= epoch < p.end)
            optimizers, schedule = _enter_phase(phase, spec, model, trainable, epoch, len(train_loader))
            if checkpoint is not None and phase.start < epoch == start_epoch:  # resumed inside this phase
                for optimizer, state in zip(optimizers, checkpoint["optimizers"], strict=True):
                    optimizer.load_state_dict(state)
                schedule.load_state_dict(schedule_state)
        torch.manual_seed(epoch_seed(spec.seed, epoch))  # dropout masks: a pure function of (seed, epoch)
        lr = schedule.lr
        _set_lr(optimizers, lr)
        step_rates = schedule.epoch_rates(epoch - phase.start)
        train_loader.set_epoch(epoch)

        tick = time.perf_counter()
        section_columns = {}
        if phase.name == "lit":
            train_loss, train_acc, section_losses = train_phase_one_epoch(
                teacher, model, train_loader, optimizers, beta=spec.lit.beta, combine=spec.lit.combine, kd=kd_kwargs,
                autocast=autocast)
        else:
            train_loss, train_acc = train_epoch(models, train_loader, optimizers, loss_fn, autocast, quantizer, views,
                                                 train_examples, step_rates)
        train_seconds = time.perf_counter() - tick
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training diverged in epoch {epoch + 1}: loss is {train_loss}")

        tick = time.perf_counter()
        shadow_scores = {}
        if isinstance(quantizer, ShadowQuantizer):  # the original reported these as the model's accuracies
            shadow_scores = _scores(models, eval_loaders, autocast)
        with quantizer.quantized() if quantizer is not None else contextlib.nullcontext():
            scores = _scores(models, eval_loaders, autocast)
        if phase.name == "lit":  # the originals' loss/section{i}/{train,validation}
            test_losses = section_mse(teacher, model, eval_loaders["test"], autocast)
            for index, (train_mse, test_mse) in enumerate(zip(section_losses, test_losses), start=1):
                section_columns |= {f"section{index}_mse": train_mse, f"section{index}_test_mse": test_mse}
        eval_seconds = time.perf_counter() - tick

        stopped_early = schedule.update(epoch - phase.start, scores["val"][0])
        history.append({
            "epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
            "val_loss": scores["val"][1], "val_acc": scores["val"][0],
            "test_loss": scores["test"][1], "test_acc": scores["test"][0],
            "train_seconds": train_seconds, "eval_seconds": eval_seconds,
            "examples_per_s": train_loader.num_examples / train_seconds,
            **({"shadow_val_acc": shadow_scores["val"][0], "shadow_test_acc": shadow_scores["test"][0]}
               if shadow_scores else {}),
            **({"phase": phase.name} if spec.lit is not None else {}),
            **section_columns,
        })
        if spec.selection == "best" and _best_row(history) is history[-1]:
            best_state = cpu_state(model)
        run.save_state({
            "next_epoch": epoch + 1, "stopped_early": stopped_early,
            "model": cpu_state(model), "optimizers": [optimizer.state_dict() for optimizer in optimizers],
            "schedule": schedule.state_dict(), "history": history, "best_state": best_state,
            "points_per_tensor": quantizer.counts if isinstance(quantizer, LearnedPointsQuantizer) else None,
            "compile_used": [*compile_used, models.used],
        })
        progress = Progress.measured(epoch + 1, epoch_total,  # timed on this session's device
                                     [row["train_seconds"] + row["eval_seconds"] for row in history[start_epoch:]])
        log.info("%s%s  lr %.3g  loss %.4f  train %.4f  val %.4f  test %.4f  %.1fs (%.0f examples/s)%s",
                 progress.describe(), f" ({phase.name})" if spec.lit is not None else "", lr, train_loss,
                 train_acc, scores["val"][0], scores["test"][0], train_seconds, history[-1]["examples_per_s"],
                 "  -> early stop" if stopped_early else "")

    # ---- outputs -------------------------------------------------------------------------------------
    if spec.selection == "best":
        model.load_state_dict(best_state)
    model_extra = {"dataset": spec.dataset, "normalization": normalization, "spec": spec.to_dict(),
                   "spec_hash": spec_hash(spec)}
    quantization = None
    if quantizer is not None:  # the saved model is the quantized one, and its packed file gives its size
        codes = quantizer.finalize_()
        quantization = {**dataclasses.asdict(spec.quant),
                        "full_precision_tensors": [name for name, _ in model.named_parameters() if name not in codes]}
        if spec.quant.method == "dq":
            quantization["points_per_tensor"] = {name: tensor.levels for name, tensor in codes.items()}
        quantization |= pack_and_measure(run_dir / PACKED_NAME, model, spec.model, model_kwargs, codes,
                                         spec.quant.bits, spec.quant.bucket_size, model_extra)
    save_model(run_dir / MODEL_NAME, model, spec.model, model_kwargs, extra=model_extra)
    write_history(run_dir / HISTORY_NAME, history, HISTORY_COLUMNS)
    lit = _lit_facts(spec, history, len(model.sections), frozen) if spec.lit is not None else None
    # per session that trained an epoch, what ran; a session resumed after the last epoch only writes the outputs
    compile_facts = {"requested": spec.compile,
                     "used": compile_used + ([models.used] if len(history) > start_epoch else [])}
    return run.finish(_record(spec, run, model, history, stopped_early, data_file, quantization, lit, compile_facts,
                              train_loader.epoch_batches(), teacher_model=teacher_info, init_model=init_info,
                              teacher_views=views_info))


def train_epoch(models: CompiledModels, loader: DeviceLoader, optimizers: list[torch.optim.Optimizer], loss_fn,
                 autocast: torch.autocast, quantizer: ShadowQuantizer | LearnedPointsQuantizer | None = None,
                 views: TeacherViews | None = None, examples: torch.Tensor | None = None,
                 step_rates: list[float] | None = None) -> tuple[float, float]:
    """One epoch of ``models`` (the trained model and an online teacher, compiled or eager); the KD logits come from
    the teacher, or from ``views`` by each example's view (``examples`` maps the loader's indices to the training
    split's, which key the table). ``step_rates``: the rate of each step (a per-step schedule); else the optimisers'
    rates stay as they are."""
    models.model.train()
    device = loader.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    for step, (inputs, targets, index, plan) in enumerate(loader.indexed_batches()):
        if step_rates is not None:  # host floats into param_groups: no sync (the optimiser step runs eager)
            _set_lr(optimizers, step_rates[step])
        teacher_logits = None
        if views is not None:  # device-side gathers: no host sync
            teacher_logits = views.lookup(examples[index], plan.dy[index], plan.dx[index], plan.flip[index])
        loss, logits = models.step(inputs.shape, lambda model, teacher: _train_step(
            model, teacher, inputs, targets, teacher_logits, optimizers, loss_fn, autocast, quantizer), optimizers)
        loss_sum += loss.detach() * len(targets)
        correct += (logits.detach().argmax(1) == targets).sum()
        seen += len(targets)
    return loss_sum.item() / seen, correct.item() / seen  # the epoch's one host sync


def _train_step(model: nn.Module, teacher: nn.Module | None, inputs: torch.Tensor, targets: torch.Tensor,
                teacher_logits: torch.Tensor | None, optimizers: list[torch.optim.Optimizer], loss_fn,
                autocast: torch.autocast, quantizer: ShadowQuantizer | LearnedPointsQuantizer | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, loss, backward, step; returns the loss and the logits. QD: forward and backward at the quantized
    point, then the step on the shadow weights; DQ: the step on the points, which are then re-sorted."""
    with quantizer.quantized() if quantizer is not None else contextlib.nullcontext():
        with autocast:
            logits = model(inputs)
            if teacher is not None:
                with torch.no_grad():
                    teacher_logits = teacher(inputs)
            loss = loss_fn(logits, targets, teacher_logits)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
    for optimizer in optimizers:
        optimizer.step()
    if quantizer is not None:
        quantizer.after_step()
    return loss, logits


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DeviceLoader, autocast: torch.autocast | None = None) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` of ``model`` over ``loader`` in eval mode."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=loader.device)
    loss_sum = torch.zeros((), device=loader.device)
    with autocast or torch.autocast(loader.device.type, enabled=False):
        for inputs, targets in loader:
            logits = model(inputs).float()
            correct += (logits.argmax(1) == targets).sum()
            loss_sum += F.cross_entropy(logits, targets, reduction="sum")
    n = loader.num_examples
    return correct.item() / n, loss_sum.item() / n


def _scores(models: CompiledModels, loaders: dict[str, DeviceLoader], autocast: torch.autocast) -> dict:
    """``{split: (accuracy, loss)}`` with "val" standing in for "test" when there is no held-out split."""
    scores = models.evaluate(lambda model: {split: evaluate(model, loader, autocast)
                                            for split, loader in loaders.items()})
    scores.setdefault("val", scores["test"])  # test-as-validation, as the originals did
    return scores


@dataclasses.dataclass(frozen=True)
class _Phase:
    name: str  # "train" (every run but LIT), or LIT's "lit" (phase 1) and "full_model" (phase 2)
    start: int  # first epoch (0-based)
    end: int  # one past the last epoch


def _phases(spec: TrainSpec) -> list[_Phase]:
    end = total_epochs(spec.identity())  # the count status reports from the run's state file
    if spec.lit is None:
        return [_Phase("train", 0, end)]
    return [_Phase("lit", 0, spec.lit.epochs), _Phase("full_model", spec.lit.epochs, end)]


def _enter_phase(phase: _Phase, spec: TrainSpec, model: nn.Module, trainable: list[nn.Parameter],
                 epoch: int, steps_per_epoch: int) -> tuple[list[torch.optim.Optimizer], Schedule]:
    """The optimisers and the schedule (positioned at ``epoch``) of ``phase``; LIT's phase 2 unfreezes the model."""
    if phase.name == "lit":
        parameter_sets = phase_one_parameter_sets(model, spec.lit.optimizer)
        lr, schedule = spec.lit.lr, build_schedule("multistep", spec.lit.lr, spec.lit.milestones, spec.lit.gamma,
                                                   epoch - phase.start)
    else:
        if phase.name == "full_model" and not spec.lit.freeze_ends_in_full_model:  # the copied ends train too
            model.requires_grad_(True)
        parameter_sets = [trainable]
        lr, schedule = spec.lr, build_schedule(
            spec.schedule, spec.lr, spec.milestones, spec.gamma, epoch - phase.start, epochs=phase.end - phase.start,
            steps_per_epoch=steps_per_epoch, warmup_epochs=spec.warmup_epochs, floor_fraction=spec.lr_floor_fraction)
    optimizers = [torch.optim.SGD(parameters, lr=lr, momentum=spec.momentum,
                                  nesterov=spec.nesterov and spec.momentum > 0, weight_decay=spec.weight_decay)
                  for parameters in parameter_sets]
    return optimizers, schedule


def _set_lr(optimizers: list[torch.optim.Optimizer], lr: float) -> None:
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr


def _load_init(model: nn.Module, init_file: dict, name: str, kwargs: dict) -> dict:
    """Load a trained model's weights (``init_file``: its input facts) into ``model`` (same architecture); return
    its provenance."""
    trained, meta = load_model(init_file["path"])
    if meta["name"] != name or meta["kwargs"] != kwargs:
        raise ValueError(f"init model {init_file['path']} is {meta['name']!r} with {meta['kwargs']}, but this run "
                         f"builds {name!r} with {kwargs}")
    model.load_state_dict(trained.state_dict())
    return {**init_file, "name": meta["name"], "spec_hash": meta.get("spec_hash")}


def _point_counts(spec: TrainSpec, model: nn.Module, names: list[str], loader: DeviceLoader,
                  autocast: torch.autocast) -> list[int]:
    """DQ's points per tensor: 2**bits each, or shared out by gradient norm (plain cross-entropy, no teacher)."""
    levels = 2 ** spec.quant.bits
    if not spec.quant.auto_bits:
        return [levels] * len(names)
    loader.set_epoch(0)  # the first batches of the first epoch: fixed by the seed
    batches = itertools.islice(loader, spec.quant.gradient_batches)
    with autocast:
        norms = gradient_norms(model, names, batches, kd_loss)  # without teacher logits: plain cross-entropy
    counts = allocate_points(norms, levels)
    log.info("points per tensor (auto bits): %s", dict(zip(names, counts)))
    return counts


def _seen(augment: bool, pad: int) -> str:
    """What a training loader (or a views table) shows of each image, for error messages."""
    return f"crops of pad {pad} and their flips" if augment else "the unaugmented images"


def _lit_facts(spec: TrainSpec, history: list[dict], sections: int, frozen: list[str]) -> dict:
    """A LIT record's ``lit`` section: the phase settings and the per-section MSE curves of phase 1."""
    phase_one = [row for row in history if row["phase"] == "lit"]
    return {
        "phase1_epochs": spec.lit.epochs, "full_model_epochs": spec.epochs,
        **{key: value for key, value in dataclasses.asdict(spec.lit).items() if key != "epochs"},
        "sections": sections, "frozen_parameters": frozen,
        "section_mse": [[row[f"section{i}_mse"] for row in phase_one] for i in range(1, sections + 1)],
        "section_test_mse": [[row[f"section{i}_test_mse"] for row in phase_one] for i in range(1, sections + 1)],
    }


def _best_row(history: list[dict]) -> dict:
    """The epoch with the highest validation accuracy; the earliest one on a tie."""
    return max(history, key=lambda row: row["val_acc"])


def _record(spec: TrainSpec, run: Run, model: nn.Module, history: list[dict], stopped_early: bool, data_file: dict,
            quantization: dict | None, lit: dict | None, compile_facts: dict, epoch_batches: dict,
            **inputs: dict | None):
    family, bins = parse_activation(spec.activation)
    final = history[-1]
    best_row = _best_row(history)
    selected = best_row if spec.selection == "best" else final
    train_seconds = sum(row["train_seconds"] for row in history)
    metrics = {
        "final_epoch": final["epoch"], "final_test_acc": final["test_acc"], "final_val_acc": final["val_acc"],
        "final_train_loss": final["train_loss"],
        "best_epoch": best_row["epoch"], "best_val_acc": best_row["val_acc"], "best_test_acc": best_row["test_acc"],
        "max_test_acc": max(row["test_acc"] for row in history),
        "selection": spec.selection, "selected_test_acc": selected["test_acc"],
        "epochs_run": len(history), "stopped_early": stopped_early,
        **({"final_shadow_test_acc": final["shadow_test_acc"], "best_shadow_test_acc": best_row["shadow_test_acc"]}
           if "shadow_test_acc" in final else {}),
    }
    examples = sum(row["examples_per_s"] * row["train_seconds"] for row in history)  # per second times seconds
    timing = run.epoch_timing(history, train_examples_per_s=examples / train_seconds, compile=compile_facts)
    sections = {
        "activation": spec.activation, "activation_family": family, "bins": bins, "metrics": metrics,
        "curve": {key: [row[key] for row in history] for key in ("epoch", "train_loss", "val_acc", "test_acc", "lr")},
        "model": model_facts(model, spec.model), "epoch_batches": epoch_batches, "quantization": quantization,
        "lit": lit,
    }
    return run.record(kind=spec.kind, labels=spec.labels, seed=spec.seed, spec=spec.to_dict(),
                      spec_hash=spec_hash(spec), sections=sections, timing=timing, data=data_file, **inputs)
