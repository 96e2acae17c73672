"""Device-resident batches: the whole split lives on the training device as uint8.

Inputs are images ``(N, C, H, W)`` or encoded documents ``(N, L)`` (character indices). Documents are
yielded as int64 ids for an embedding, with no normalisation and no augmentation; order, seeding,
``drop_last`` and indexing are the same as for images.

Per epoch the loader draws, for every example at once and with its own generator seeded from
``(seed, epoch)``, a shuffled order, a crop offset and a flip bit (``epoch_plan``). Each batch
is an index slice of that plan: gather the uint8 images, zero-pad by 4, crop, flip, convert and
normalise, all on the device. There are no workers, no per-sample Python and no host copies.
Because the plan is a pure function of ``(seed, epoch)``, a resumed run sees exactly the batches
an uninterrupted one would, and the same (index, offset, flip) triple keys cached teacher outputs
(``indexed_batches``; compresslib.training.teacher_views).

The augmentation is the originals' torchvision pipeline: ``RandomCrop(32, padding=4)`` with zero
fill, then ``RandomHorizontalFlip``, then ``Normalize(mean, std)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compresslib.catalog import HOLDOUT_SPLITS

__all__ = ["EpochPlan", "DeviceLoader", "holdout_split", "epoch_seed"]


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A distinct, reproducible 63-bit seed for (run seed, epoch, stream)."""
    return (seed * 1_000_003 + epoch * 7919 + stream * 104_729) % (2**63 - 1)


@dataclass(frozen=True)
class EpochPlan:
    order: torch.Tensor  # (N,) example indices in visiting order
    dy: torch.Tensor  # (N,) crop offsets in [0, 2 * pad], indexed by example (not by position)
    dx: torch.Tensor
    flip: torch.Tensor  # (N,) bool


class DeviceLoader:
    """Iterate ``(inputs, labels)`` batches of a uint8 image or document tensor that lives on ``device``.

    Images need ``mean`` and ``std`` (one value per channel); documents take neither, nor ``augment``
    or ``channels_last``.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        augment: bool,
        shuffle: bool,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        seed: int = 0,
        drop_last: bool = False,
        pad: int = 4,
        device: str | torch.device = "cpu",
        channels_last: bool = False,
    ) -> None:
        if inputs.dtype != torch.uint8 or inputs.ndim not in (2, 4):
            raise ValueError(f"inputs must be uint8 images (N, C, H, W) or encoded documents (N, L), "
                             f"got {inputs.dtype} {tuple(inputs.shape)}")
        self.text = inputs.ndim == 2
        if len(inputs) != len(labels):
            raise ValueError(f"{len(inputs)} {'documents' if self.text else 'images'} but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.text and (mean is not None or std is not None):
            raise ValueError("encoded documents take no normalisation: pass mean=None and std=None")
        if self.text and augment:
            raise ValueError("there is no augmentation for encoded documents: pass augment=False")
        if self.text and channels_last:
            raise ValueError("channels_last applies to images only: pass channels_last=False for documents")
        self.device = torch.device(device)
        self.inputs = inputs.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.augment, self.shuffle, self.drop_last = augment, shuffle, drop_last
        self.seed, self.pad = seed, pad
        self.channels_last = channels_last
        self.epoch = 0
        if not self.text:
            channels = inputs.shape[1]
            if mean is None or std is None or len(mean) != channels or len(std) != channels:
                raise ValueError(f"mean and std need {channels} values each")
            # x_norm = (x / 255 - mean) / std, folded into one multiply-add on uint8 input.
            std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
            mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
            self._scale = 1.0 / (255.0 * std_t)
            self._shift = -mean_t / std_t

    def __len__(self) -> int:
        n = len(self.inputs)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_examples(self) -> int:
        return len(self.inputs)

    def epoch_batches(self) -> dict[str, int]:
        """How an epoch is cut: ``count`` batches, the last of ``last_size`` examples (a partial batch unless it
        equals the batch size), ``dropped_examples`` left out (``drop_last``)."""
        count = len(self)
        covered = count * self.batch_size if self.drop_last else self.num_examples
        return {"count": count, "last_size": covered - (count - 1) * self.batch_size if count else 0,
                "dropped_examples": self.num_examples - covered}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_plan(self, epoch: int) -> EpochPlan:
        n = len(self.inputs)
        generator = torch.Generator(device=self.device).manual_seed(epoch_seed(self.seed, epoch, stream=1))
        if self.shuffle:
            order = torch.randperm(n, generator=generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        if self.augment:
            dy = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator, device=self.device)
            dx = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator, device=self.device)
            flip = torch.rand(n, generator=generator, device=self.device) < 0.5
        else:
            dy = dx = torch.full((n,), self.pad, device=self.device)
            flip = torch.zeros(n, dtype=torch.bool, device=self.device)
        return EpochPlan(order, dy, dx, flip)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for inputs, labels, _, _ in self.indexed_batches():
            yield inputs, labels

    def indexed_batches(self, plan: EpochPlan | None = None
                        ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, EpochPlan]]:
        """``(inputs, labels, index, plan)`` per batch: the batch, the indices of its examples and the plan that
        ordered and augmented them (the current epoch's unless one is given), so that each example's view
        ``(index, plan.dy[index], plan.dx[index], plan.flip[index])`` can key cached teacher outputs."""
        if plan is None:
            plan = self.epoch_plan(self.epoch)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = plan.order[start:start + self.batch_size]
            yield self.transform(index, plan), self.labels[index], index, plan

    def transform(self, index: torch.Tensor, plan: EpochPlan) -> torch.Tensor:
        """Normalised float images for ``index`` with the plan's crop and flip applied; int64 ids for documents."""
        batch = self.inputs[index]
        if self.text:
            return batch.long()  # nn.Embedding takes int64 indices
        if self.augment:
            batch = _crop_flip(batch, plan.dy[index], plan.dx[index], plan.flip[index], self.pad)
        out = batch.float().mul_(self._scale).add_(self._shift)
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out


def _crop_flip(batch: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad by ``pad``, crop back to the input size at per-example offsets, then flip where asked."""
    b, c, h, w = batch.shape
    padded = F.pad(batch, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h, device=batch.device)  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=batch.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # flipping the crop == reversing its column order
    return padded[
        torch.arange(b, device=batch.device)[:, None, None, None],
        torch.arange(c, device=batch.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]




def holdout_split(num_examples: int, holdout_size: int, seed: int, split: str = "random"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """A (train, held-out) partition of ``range(num_examples)``: random, fixed by ``seed``, or the last
    ``holdout_size`` examples (ESNAC's CIFAR*Val: the first 45,000 train, the last 5,000 validate)."""
    if not 0 < holdout_size < num_examples:
        raise ValueError(f"holdout_size must be in (0, {num_examples}), got {holdout_size}")
    if split not in HOLDOUT_SPLITS:
        raise ValueError(f"holdout split must be one of {', '.join(HOLDOUT_SPLITS)}, got {split!r}")
    if split == "last":
        return torch.arange(num_examples - holdout_size), torch.arange(num_examples - holdout_size, num_examples)
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed))
    return order[holdout_size:].sort().values, order[:holdout_size].sort().values
