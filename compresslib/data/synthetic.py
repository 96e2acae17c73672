"""A deterministic synthetic 10-class image dataset (3 x 32 x 32, uint8) for the offline demo.

Five coloured base gratings (each an orientation, a spatial frequency and a colour) are fixed by
the seed. Class ``c`` is one unordered *pair* of base gratings (5 choose 2 = 10 classes), so a
model has to detect which two of the five patterns are present: no single feature separates the
classes. Every image draws a random phase per grating (translation), random amplitudes for its
pair, a distractor grating from outside the pair at a random amplitude, a smooth background field
and pixel noise. A distractor that comes out stronger than a true grating makes some images
ambiguous, so accuracy stays well below 100 % while a small convnet learns far above chance in a
few epochs. Generation uses its own CPU generator: the same arguments give the same bytes.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

__all__ = ["make_synthetic", "CLASS_PAIRS"]

NUM_BASE = 5
CLASS_PAIRS: tuple[tuple[int, int], ...] = tuple(itertools.combinations(range(NUM_BASE), 2))


def make_synthetic(
    train_size: int = 10000,
    test_size: int = 2000,
    seed: int = 0,
    image_size: int = 32,
    distractor_max: float = 0.75,
    noise: float = 1.0,
) -> dict:
    """Return ``{"train_inputs", "train_labels", "test_inputs", "test_labels", "classes"}``.

    ``distractor_max`` (upper bound of the distractor amplitude, true gratings draw from [0.5, 1])
    and ``noise`` (pixel noise std relative to a unit grating) set the difficulty.
    """
    if train_size < 1 or test_size < 1:
        raise ValueError("synthetic train_size and test_size must be positive")
    generator = torch.Generator().manual_seed(seed)
    bases = _base_gratings(generator)
    train_inputs, train_labels = _sample(train_size, bases, image_size, distractor_max, noise, generator)
    test_inputs, test_labels = _sample(test_size, bases, image_size, distractor_max, noise, generator)
    classes = [f"gratings{a}+{b}" for a, b in CLASS_PAIRS]
    return {"train_inputs": train_inputs, "train_labels": train_labels,
            "test_inputs": test_inputs, "test_labels": test_labels, "classes": classes, "files": {}}


def _base_gratings(generator: torch.Generator) -> dict[str, torch.Tensor]:
    # Orientations spread over [0, pi) with jitter, frequencies in 1.5..5 cycles per image, unit-norm colours.
    orientation = (torch.arange(NUM_BASE) + 0.6 * torch.rand(NUM_BASE, generator=generator)) * math.pi / NUM_BASE
    frequency = 1.5 + 3.5 * torch.rand(NUM_BASE, generator=generator)
    colour = torch.rand(NUM_BASE, 3, generator=generator) * 2 - 1
    colour = colour / colour.norm(dim=1, keepdim=True)
    return {"orientation": orientation, "frequency": frequency, "colour": colour}


def _sample(n: int, bases: dict, size: int, distractor_max: float, noise: float,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.randint(len(CLASS_PAIRS), (n,), generator=generator)
    pairs = torch.tensor(CLASS_PAIRS)[labels]  # (n, 2)
    # The distractor is a uniformly drawn base grating outside the pair.
    outside = torch.ones(n, NUM_BASE).scatter_(1, pairs, 0.0)
    distractor = torch.multinomial(outside, 1, generator=generator).squeeze(1)

    amplitude = torch.zeros(n, NUM_BASE)
    amplitude.scatter_(1, pairs, 0.5 + 0.5 * torch.rand(n, 2, generator=generator))
    amplitude[torch.arange(n), distractor] = distractor_max * torch.rand(n, generator=generator)

    coords = torch.arange(size, dtype=torch.float32) / size
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    direction = (x[None] * torch.cos(bases["orientation"])[:, None, None]
                 + y[None] * torch.sin(bases["orientation"])[:, None, None])  # (B, H, W)
    phase = 2 * math.pi * torch.rand(n, NUM_BASE, 1, 1, generator=generator)
    waves = torch.sin(2 * math.pi * bases["frequency"][None, :, None, None] * direction[None] + phase)  # (n, B, H, W)
    images = torch.einsum("nb,bc,nbhw->nchw", amplitude, bases["colour"], waves)

    # Smooth background: coarse noise upsampled, so it competes with low-frequency gratings.
    coarse = torch.randn(n, 3, 4, 4, generator=generator)
    images += 0.5 * F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    images += noise * torch.randn(n, 3, size, size, generator=generator)
    images = (images / 4 + 0.5).clamp(0, 1)  # about +-2 units of signal map into [0, 1]
    return (images * 255).round().to(torch.uint8), labels
