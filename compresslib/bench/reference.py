"""Path (a), the reference: training and evaluation written the way the original code bases do them.

QD's ``datasets/CIFAR10.py`` (and LMA's fork) wrap torchvision's CIFAR10 dataset in a DataLoader: per image,
torchvision turns the stored HWC uint8 array into a PIL image and runs ``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip``, ``ToTensor`` and ``Normalize`` in the loader's worker processes (the test split:
``ToTensor`` and ``Normalize`` only, and shuffled too). Each batch is collated on the host, copied to the
device, and the step runs in fp32 in the default memory format, uncompiled; a KD student's teacher (eval
mode) runs online on every batch, and every step's loss is read on the host (QD's ``loss.data[0]``).
Evaluation reads each batch's correct count the same way. Batches are pinned on CUDA (QD's ``pin_memory``
option).

One departure, in the reference's favour: its workers persist across epochs. The originals start them afresh
every epoch, which CIFAR's 781 steps per epoch amortise, but which would dominate the benchmark's small CPU
sizes (a few steps per epoch).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from compresslib.bench.pairs import LOSS, Pair

__all__ = ["ArrayImageDataset", "originals_transform", "reference_loader", "ReferenceTraining", "reference_evaluate"]


class ArrayImageDataset(Dataset):
    """torchvision's ``CIFAR10.__getitem__`` over in-memory images: HWC uint8 -> PIL image -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: transforms.Compose) -> None:
        self.data: np.ndarray = images.permute(0, 2, 3, 1).contiguous().numpy()  # (N, H, W, C), CIFAR10.data's layout
        self.targets: list[int] = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


def originals_transform(mean: Sequence[float], std: Sequence[float], train: bool) -> transforms.Compose:
    """QD's ``getTrainLoader`` / ``getTestLoader`` transforms (reference/seeds.md §1.7)."""
    augment = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if train else []
    return transforms.Compose([*augment, transforms.ToTensor(), transforms.Normalize(mean, std)])


def reference_loader(images: torch.Tensor, labels: torch.Tensor, pair: Pair, *, train: bool, workers: int,
                     device: torch.device) -> DataLoader:
    """A shuffled DataLoader over uint8 ``(N, C, H, W)`` images with the originals' transforms in ``workers``
    processes, in batches of the pair's training batch for evaluation too (QD's ``getTestLoader(batch_size)``).
    Training drops the last partial batch, so that every step has the paper's batch size (as compresslib's path
    does in the benchmark)."""
    dataset = ArrayImageDataset(images, labels, originals_transform(pair.info.mean, pair.info.std, train))
    return DataLoader(dataset, batch_size=pair.batch_size, shuffle=True, num_workers=workers,
                      pin_memory=device.type == "cuda", drop_last=train, persistent_workers=workers > 0)


class ReferenceTraining:
    """SGD steps on ``model`` the originals' way, over the loader's epochs one after another."""

    def __init__(self, model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, device: torch.device,
                 teacher: nn.Module | None = None) -> None:
        if len(loader) == 0:
            raise ValueError(f"{len(loader.dataset)} images make no full batch of {loader.batch_size}")
        self.model, self.loader, self.optimizer, self.device = model, loader, optimizer, device
        self.teacher = teacher.eval() if teacher is not None else None
        # no reference back to self: dropping the training object shuts its workers down at once
        self._batches = _epochs(loader)

    def run(self, steps: int) -> float:
        """Take ``steps`` steps; return their mean loss."""
        self.model.train()
        total = 0.0
        for inputs, targets in itertools.islice(self._batches, steps):
            inputs, targets = inputs.to(self.device), targets.to(self.device)
            logits = self.model(inputs)
            teacher_logits = None
            if self.teacher is not None:
                with torch.no_grad():
                    teacher_logits = self.teacher(inputs)
            loss = LOSS(logits, targets, teacher_logits)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += loss.item()  # a host sync per step: the originals read every step's loss
        return total / steps


def _epochs(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from loader


@torch.no_grad()
def reference_evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    """Accuracy of ``model`` over ``loader`` as QD's ``evaluateModel`` computes it (eval mode, fp32)."""
    model.eval()
    correct = 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        correct += (model(inputs).argmax(1) == targets).sum().item()  # a host sync per batch, as the originals
    return correct / len(loader.dataset)
