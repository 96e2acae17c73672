"""Learning-rate schedules: the originals' per-epoch image schedules, a per-step cosine one, and the translation ones.

Image runs (``compresslib.training``): every schedule answers ``lr`` (the rate for the coming epoch; for ``cosine``
the rate of its first step), ``epoch_rates(epoch)`` (the rate of each of the epoch's steps for ``cosine``, None for
the per-epoch schedules) and ``update(epoch, val_acc)``, called after 0-based epoch ``epoch`` has been evaluated;
it sets the next epoch's rate and says whether to stop. That is QD's convention
(``LearningRateScheduler.update_learning_rate`` after each epoch), so milestones land on the same epochs as in the
originals. Step schedules and ``cosine`` are pure functions of the epoch (``cosine``: of the optimiser step);
``generic`` depends on the validation history, so its state is saved with the checkpoint.

* ``generic`` — QD/LMA plateau halving (reference/seeds.md §1.8): an epoch improves when its
  validation error beats the best so far by more than 0.001. After 10 epochs without improvement
  the rate halves, then at least 8 epochs pass before the next halving. Training stops after more
  than 30 epochs without improvement or more than 11 halvings.
* ``cifar100`` — QD's ``lr0 * 0.2^m`` with m = number of thresholds 60/120/160 that the finished
  epoch index exceeds; the first drop therefore applies from 0-based epoch 62 (the 63rd epoch).
* ``multistep`` — PyTorch ``MultiStepLR``: ``lr0 * gamma^(number of milestones <= epoch)``.
* ``constant``.
* ``cosine`` — per optimiser step ``s`` (nanoGPT's ``get_lr``), with ``W`` warmup and ``T`` total steps (whole epochs
  times the batches of an epoch, the kept partial last batch included): ``lr0 · (s + 1) / (W + 1)`` for ``s < W``,
  then ``floor + (lr0 - floor) · (1 + cos(π (s - W) / (T - W))) / 2``, which reaches ``floor`` at ``s = T``, the
  step after the last. Not from the originals: an addition for new recipes.

Translation runs (``compresslib.translation.train``) set the rate before every update with ``next_lr()`` and
report each validated epoch with ``end_epoch(epoch, valid_ppl)``:

* :class:`NoamSchedule` (LMA's Transformer, Adam): ``lr(s) = factor · d^-0.5 · min(s^-0.5, s · warmup^-1.5)`` for
  update step ``s`` >= 1; its state is the step counter.
* :class:`OnmtDecay` (QD's OpenNMT LSTM, SGD): OpenNMT-py 0.x's ``Optim.updateLearningRate``, a constant rate until
  decaying starts, then a factor per validated epoch (the switch is sticky).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Protocol

__all__ = ["SCHEDULES", "Schedule", "PlateauHalving", "StepSchedule", "CosineSchedule", "build_schedule",
           "NoamSchedule", "OnmtDecay"]

SCHEDULES = ("generic", "cifar100", "multistep", "constant", "cosine")


class Schedule(Protocol):
    """An image run's schedule (see above); the schedules here subclass it, so the per-epoch ones inherit
    ``epoch_rates``."""

    lr: float

    def epoch_rates(self, epoch: int) -> list[float] | None:
        """The rate of every optimiser step of 0-based epoch ``epoch``; None: ``lr`` holds for the whole epoch (every
        schedule but ``cosine``, which overrides this)."""
        return None

    def update(self, epoch: int, val_acc: float) -> bool: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class _PureSchedule(Schedule):
    """A schedule that is a pure function of its position: a checkpoint needs only the epoch."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class StepSchedule(_PureSchedule):
    """``lr(epoch) = lr0 * gamma^(number of milestones <= epoch)`` for 0-based epochs."""

    def __init__(self, lr0: float, milestones: Sequence[int], gamma: float, start_epoch: int = 0) -> None:
        self.lr0, self.milestones, self.gamma = lr0, sorted(milestones), gamma
        self.lr = self.lr_at(start_epoch)

    def lr_at(self, epoch: int) -> float:
        return self.lr0 * self.gamma ** bisect.bisect_right(self.milestones, epoch)

    def update(self, epoch: int, val_acc: float) -> bool:
        self.lr = self.lr_at(epoch + 1)
        return False


class PlateauHalving(Schedule):
    """QD's ``generic`` schedule (see module docstring)."""

    def __init__(self, lr0: float, patience: int = 10, cooldown: int = 8, stop_patience: int = 30,
                 max_halvings: int = 11, min_improvement: float = 0.001) -> None:
        self.lr = lr0
        self.patience, self.cooldown, self.stop_patience = patience, cooldown, stop_patience
        self.max_halvings, self.min_improvement = max_halvings, min_improvement
        self.best_error = float("inf")
        self.epochs_without_improvement = 0
        self.cooldown_left = 0
        self.halvings = 0

    def update(self, epoch: int, val_acc: float) -> bool:
        error = 1.0 - val_acc
        if error + self.min_improvement < self.best_error:
            self.best_error = error
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        self.cooldown_left = max(self.cooldown_left - 1, 0)
        if self.epochs_without_improvement >= self.patience and self.cooldown_left == 0:
            self.cooldown_left = self.cooldown
            self.halvings += 1
            self.lr /= 2
        return self.epochs_without_improvement > self.stop_patience or self.halvings > self.max_halvings

    _STATE = ("lr", "best_error", "epochs_without_improvement", "cooldown_left", "halvings")

    def state_dict(self) -> dict:
        return {key: getattr(self, key) for key in self._STATE}

    def load_state_dict(self, state: dict) -> None:
        for key in self._STATE:
            setattr(self, key, state[key])


class ConstantSchedule(StepSchedule):
    def __init__(self, lr0: float, start_epoch: int = 0) -> None:
        super().__init__(lr0, [], 1.0, start_epoch)


class CosineSchedule(_PureSchedule):
    """Linear warmup, then cosine decay to ``floor_fraction · lr0``, per optimiser step (see module docstring).
    Warmup and length are whole epochs, so every epoch starts at step ``epoch · steps_per_epoch``."""

    def __init__(self, lr0: float, epochs: int, steps_per_epoch: int, warmup_epochs: int = 0,
                 floor_fraction: float = 0.0, start_epoch: int = 0) -> None:
        if not (steps_per_epoch >= 1 and 0 <= warmup_epochs < epochs and 0 <= floor_fraction < 1):
            raise ValueError(f"cosine schedule: needs steps_per_epoch >= 1, 0 <= warmup_epochs < epochs and "
                             f"0 <= floor_fraction < 1; got steps_per_epoch={steps_per_epoch}, warmup_epochs="
                             f"{warmup_epochs}, epochs={epochs}, floor_fraction={floor_fraction}")
        self.lr0, self.floor, self.steps_per_epoch = lr0, floor_fraction * lr0, steps_per_epoch
        self.warmup_steps, self.total_steps = warmup_epochs * steps_per_epoch, epochs * steps_per_epoch
        self.lr = self.lr_at(start_epoch * steps_per_epoch)

    def lr_at(self, step: int) -> float:
        """The rate of 0-based optimiser step ``step`` (``total_steps``: the floor, where the decay ends)."""
        if not 0 <= step <= self.total_steps:
            raise ValueError(f"step {step} is outside the schedule's 0 to {self.total_steps} steps")
        if step < self.warmup_steps:
            return self.lr0 * (step + 1) / (self.warmup_steps + 1)
        progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return self.floor + (self.lr0 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def epoch_rates(self, epoch: int) -> list[float]:
        """The rate of every optimiser step of 0-based epoch ``epoch``."""
        first = epoch * self.steps_per_epoch
        return [self.lr_at(step) for step in range(first, first + self.steps_per_epoch)]

    def update(self, epoch: int, val_acc: float) -> bool:
        self.lr = self.lr_at((epoch + 1) * self.steps_per_epoch)
        return False


def build_schedule(name: str, lr0: float, milestones: Sequence[int] = (), gamma: float = 0.1,
                   start_epoch: int = 0, *, epochs: int | None = None, steps_per_epoch: int | None = None,
                   warmup_epochs: int = 0, floor_fraction: float = 0.0) -> Schedule:
    """The schedule ``name`` positioned at ``start_epoch`` (``generic`` restores its state separately). ``cosine``
    also needs the run's ``epochs`` and ``steps_per_epoch`` (optimiser steps per epoch)."""
    if name == "generic":
        return PlateauHalving(lr0)
    if name == "cifar100":
        # QD sets lr after epoch e from m(e) = #{t in 60, 120, 160 : e > t}; as a function of the
        # epoch about to run that is a drop at 60 + 2, 120 + 2, 160 + 2.
        return StepSchedule(lr0, [62, 122, 162], 0.2, start_epoch)
    if name == "multistep":
        return StepSchedule(lr0, milestones, gamma, start_epoch)
    if name == "constant":
        return ConstantSchedule(lr0, start_epoch)
    if name == "cosine":
        if epochs is None or steps_per_epoch is None:
            raise ValueError("the cosine schedule needs the run's epochs and steps_per_epoch")
        return CosineSchedule(lr0, epochs, steps_per_epoch, warmup_epochs, floor_fraction, start_epoch)
    raise ValueError(f"unknown schedule {name!r}; known schedules: {', '.join(SCHEDULES)}")


class NoamSchedule:
    """``lr(s) = factor · d^-0.5 · min(s^-0.5, s · warmup^-1.5)`` for update step ``s`` >= 1 (LMA)."""

    def __init__(self, factor: float, d_model: int, warmup: int) -> None:
        self.factor, self.d_model, self.warmup = factor, d_model, warmup
        self.step = 0  # updates done so far

    def lr_at(self, step: int) -> float:
        if step < 1:
            raise ValueError(f"the Noam schedule starts at step 1, got {step}")
        return self.factor * self.d_model ** -0.5 * min(step ** -0.5, step * self.warmup ** -1.5)

    def next_lr(self) -> float:
        """The rate of the coming update (advances the step counter)."""
        self.step += 1
        return self.lr_at(self.step)

    def end_epoch(self, epoch: int, valid_ppl: float) -> None:
        """Nothing: the rate depends on the step alone."""

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


class OnmtDecay:
    """OpenNMT-py 0.x ``Optim.updateLearningRate`` for SGD (QD): a constant rate until decaying starts, once
    1-based epoch ``e >= start_decay_epoch`` has been validated or the validation perplexity rose; from then on
    every validated epoch multiplies the rate by ``decay``."""

    def __init__(self, lr: float, decay: float, start_decay_epoch: int) -> None:
        self.lr, self.decay, self.start_decay_epoch = lr, decay, start_decay_epoch
        self.last_ppl: float | None = None
        self.decaying = False

    def next_lr(self) -> float:
        return self.lr

    def end_epoch(self, epoch: int, valid_ppl: float) -> None:
        """After 1-based ``epoch`` was validated at perplexity ``valid_ppl``: set the next epoch's rate."""
        if epoch >= self.start_decay_epoch:
            self.decaying = True
        if self.last_ppl is not None and valid_ppl > self.last_ppl:
            self.decaying = True
        if self.decaying:
            self.lr *= self.decay
        self.last_ppl = valid_ppl

    def state_dict(self) -> dict:
        return {"lr": self.lr, "last_ppl": self.last_ppl, "decaying": self.decaying}

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.last_ppl, self.decaying = state["lr"], state["last_ppl"], state["decaying"]
