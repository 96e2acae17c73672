"""Compiled training steps: the trained model and an online teacher wrapped in ``torch.compile``, falling back to
eager where compiling fails.

``torch.compile(..., dynamic=False)`` specialises every graph to its input shapes: a full training batch, the kept
partial last batch, and an evaluation batch in eval mode each get one static graph. Compiling happens at a graph's
first call: the forward there, the backward at its first backward pass (inductor compiles it lazily). So the first
training step of each input shape is guarded: the state it may touch (the model's parameters and buffers, e.g.
BatchNorm's running statistics, the optimisers' state, the RNG) is copied before it; where it raises, one warning
names the reason, the copy is put back and the step runs again eagerly, as does the rest of the session. A redone
step starts from exactly the state the eager step would have, so a session that falls back at its first step
computes what an eager session computes, bit for bit. Evaluation changes no state: a failing compiled evaluation
simply runs again eagerly. ``used`` says what ran: ``"on"``, ``"on (<what stays eager>)"``, ``"off"``, or
``"failed (<error>: <first line>); eager"``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Hashable
from typing import TypeVar

import torch
from torch import nn

from compresslib.cli import error_summary
from compresslib.specs.training import TrainSpec

__all__ = ["compile_wanted", "CompiledModels", "training_models"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def compile_wanted(setting: str, device: torch.device) -> bool:
    """Whether a spec's ``compile`` (auto | on | off) compiles on ``device``: ``auto`` compiles on CUDA only, where
    it pays; on the CPU the compile time outweighs what it saves in runs of CPU size."""
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def training_models(spec: TrainSpec, model: nn.Module, teacher: nn.Module | None,
                    device: torch.device) -> CompiledModels:
    """A training run's models, compiled as ``spec.compile`` asks on ``device``. Quantized runs compile too: QD
    copies the quantized values into the parameters in place and DQ computes its weights from the points in the
    graph, and a compiled graph reads parameters as inputs (compiled QD and DQ steps match eager ones to float
    rounding). LIT's phase 1 stays eager: it trains the student's sections one by one on the teacher's section
    outputs, not through the models' forward; its phase 2 and every evaluation are compiled."""
    wanted = compile_wanted(spec.compile, device)
    return CompiledModels(model, teacher, compiled=wanted, note="lit phase 1 eager" if wanted and spec.lit else None)


class CompiledModels:
    """``model`` (trained) and ``teacher`` (an online teacher, or None) as a session runs them: compiled when
    ``compiled``, until compiling fails, eager after. ``model`` and ``teacher`` stay the eager modules, whose
    parameters the compiled ones share: checkpoints and outputs read them. ``note`` says what stays eager in a
    compiled run (in ``used``)."""

    def __init__(self, model: nn.Module, teacher: nn.Module | None = None, *, compiled: bool,
                 note: str | None = None) -> None:
        self.model, self.teacher = model, teacher
        self._compiled = None
        if compiled:
            self._compiled = (torch.compile(model, dynamic=False),
                              torch.compile(teacher, dynamic=False) if teacher is not None else None)
        self.used = ("on" + (f" ({note})" if note else "")) if compiled else "off"
        self._guarded: set[Hashable] = set()  # keys whose first compiled step went through

    def _models(self) -> tuple[nn.Module, nn.Module | None]:
        return self._compiled if self._compiled is not None else (self.model, self.teacher)

    def step(self, key: Hashable, run: Callable[[nn.Module, nn.Module | None], T],
             optimizers: list[torch.optim.Optimizer]) -> T:
        """``run(model, teacher)``: one training step with the models in use. The first compiled step of each ``key``
        (what selects a graph: the input shape) is guarded; where it fails, the state it may have touched is put
        back and the step, and the rest of the session, runs eagerly."""
        if self._compiled is None or key in self._guarded:
            return run(*self._models())
        saved = _TrainingState(self.model, optimizers)
        try:
            result = run(*self._compiled)
        except Exception as error:  # torch.compile fails in many ways (no C compiler, an unsupported op, a bug)
            self._fall_back(error)
            saved.restore()
            return run(self.model, self.teacher)
        self._guarded.add(key)
        return result

    def evaluate(self, run: Callable[[nn.Module], T]) -> T:
        """``run(model)`` with the model in use; where the compiled one fails, eagerly (evaluation changes no
        state), as is everything after."""
        if self._compiled is None:
            return run(self.model)
        try:
            return run(self._compiled[0])
        except Exception as error:
            self._fall_back(error)
            return run(self.model)

    def _fall_back(self, error: Exception) -> None:
        reason = error_summary(error)
        log.warning("torch.compile failed (%s); running eager instead", reason)
        self.used, self._compiled = f"failed ({reason}); eager", None


class _TrainingState:
    """A copy of what a training step changes: the model's parameters and buffers, the optimisers' state and the
    RNG state (dropout, stochastic rounding) of the CPU and of the model's CUDA device."""

    def __init__(self, model: nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
        self.model, self.optimizers = model, optimizers
        self.weights = {key: value.detach().clone() for key, value in model.state_dict().items()}
        self.optimizer_states = [copy.deepcopy(optimizer.state_dict()) for optimizer in optimizers]
        self.cpu_rng = torch.get_rng_state()
        devices = {tensor.device for tensor in self.weights.values() if tensor.device.type == "cuda"}
        self.cuda_rng = {device: torch.cuda.get_rng_state(device) for device in devices}

    def restore(self) -> None:
        self.model.load_state_dict(self.weights)  # copies into the tensors: the optimisers keep their parameters
        for optimizer, state in zip(self.optimizers, self.optimizer_states, strict=True):
            optimizer.load_state_dict(state)
        torch.set_rng_state(self.cpu_rng)
        for device, state in self.cuda_rng.items():
            torch.cuda.set_rng_state(state, device)
