"""The settings of an ESNAC search (``SearchSpec``, with its learned kernel's ``KernelSpec``), without torch.

Defaults are ESNAC's options.py (seeds.md §3.5-3.6); the search itself is ``compresslib.esnac.search``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compresslib.catalog import HOLDOUT_SPLITS
from compresslib.settings import Settings, check_runtime, require, require_choice

__all__ = ["KernelSpec", "SearchSpec", "STRATEGIES", "SEARCH_LOSSES", "SEARCH_TABLE", "SEARCH_STATE", "TOP_DIR",
           "arch_file"]

# a search's outputs in its run folder, which the workflow's rules name too
SEARCH_TABLE = "search.csv"  # one row per candidate
TOP_DIR = "top"  # arch-<rank>.pt and .json of the best candidates, written when the search ends
SEARCH_STATE = "search-state.pt"  # the state file of a search in progress
STRATEGIES = ("esnac", "random")  # learned-kernel Bayesian optimisation, or random proposals at the same budget
SEARCH_LOSSES = ("logit_mse", "cross_entropy")  # a candidate's training loss: MSE to the teacher's logits, or labels


@dataclass
class KernelSpec:
    """The learned kernel (seeds.md §3.5: ke_* and co_alpha/co_beta)."""

    hidden_size: int = 64  # per direction of the 4-layer bi-LSTM
    num_layers: int = 4
    lr: float = 1e-3  # Adam on the LSTM weights
    weight_decay: float = 5e-4
    alpha: float = 0.01  # RBF width: k = exp(-|e_a - e_b|^2 / (2 alpha))
    beta: float = 0.05  # GP noise
    max_steps: int = 100
    ma_weight: float = 0.5  # stop once j > 5 and |ma - ll| < tolerance, ma <- w*ll + (1-w)*ma
    tolerance: float = 1e-3


@dataclass
class SearchSpec(Settings):
    """Every setting of one search; defaults are ESNAC's options.py."""

    dataset: str = "cifar100"
    strategy: str = "esnac"  # esnac (learned-kernel BO) or random (the same budget of random proposals)
    seed: int = 127  # ESNAC's seed_everything(127)
    steps: int = 20  # co_step_n
    candidates_per_step: int = 8  # co_kernel_n: one kernel (esnac) per candidate
    acquisition_samples: int = 1000  # ac_search_n: random actions scored by EI per kernel
    history_keep: float = 0.5  # co_gamma: probability that a history record enters a kernel
    top_k: int = 4  # co_best_n: candidates kept for full training
    epochs: int = 10  # tr_se_epochs
    batch_size: int = 128
    lr: float = 1e-3  # Adam
    weight_decay: float = 5e-4
    loss: str = "logit_mse"  # "logit_mse" to the teacher's logits (ESNAC's 'KD') or "cross_entropy" on labels
    holdout_size: int = 5000  # the search's held-out split of the training set
    holdout_split: str = "last"  # ESNAC: the last 5,000 training images; "random" uses holdout_seed
    holdout_seed: int = 0
    eval_batch_size: int = 1000
    kernel: KernelSpec = field(default_factory=KernelSpec)
    # ---- runtime (not part of the search's identity) ----
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool | None = None
    threads: int = 0
    labels: dict = field(default_factory=dict)

    def validate(self) -> None:
        require_choice("strategy", self.strategy, STRATEGIES)
        require_choice("loss", self.loss, SEARCH_LOSSES)
        for key in ("steps", "candidates_per_step", "acquisition_samples", "top_k", "epochs", "batch_size",
                    "holdout_size", "eval_batch_size"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        require(0 < self.history_keep <= 1, "history_keep", self.history_keep, "a number in (0, 1]")
        require(self.lr > 0, "lr", self.lr, "a number > 0")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        require_choice("holdout_split", self.holdout_split, HOLDOUT_SPLITS)
        check_runtime(self)
        require(self.kernel.max_steps >= 1, "kernel.max_steps", self.kernel.max_steps, "an integer >= 1")
        for key in ("alpha", "beta", "lr", "tolerance"):
            require(getattr(self.kernel, key) > 0, f"kernel.{key}", getattr(self.kernel, key), "a number > 0")


def arch_file(rank: int | str, suffix: str = "pt") -> str:
    """The file name of the rank-``rank`` architecture in a search's :data:`TOP_DIR` (``.pt``: its model file)."""
    return f"arch-{rank}.{suffix}"
