"""ESNAC's learned architecture kernel, its Gaussian process and expected improvement (seeds.md §3.5).

Cao, Wang, Kitani, "Learnable Embedding Space for Efficient Neural Architecture Compression", ICLR 2019.

An architecture is a sequence of per-layer rows (272 numbers each, §3.3). A bidirectional LSTM reads it; its
outputs, averaged over the layers and L2-normalised, are the architecture's embedding ``e``. Two architectures
are compared by an RBF kernel on embeddings,

    k(a, b) = exp(-||e_a - e_b||^2 / (2 alpha)),      alpha = 0.01,

and a zero-mean GP with noise beta = 0.05 predicts the reward. Only the LSTM is learned: Adam maximises the
leave-one-out predictive log-likelihood of the kernel's own training points, re-embedding every point at each
step. Expected improvement over the best training reward then ranks candidate architectures.

The LSTM runs in float32; the GP algebra (kernel matrix, Cholesky, solves) runs in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ArchitectureEmbedding", "FittedKernel", "GaussianProcess", "expected_improvement", "fit_kernel",
           "loo_log_likelihood", "propose", "rbf_kernel"]

PREDICT_CHUNK = 256  # candidate architectures embedded per LSTM call in FittedKernel.predict


class ArchitectureEmbedding(nn.Module):
    """Bidirectional LSTM over an architecture's layer rows, averaged over layers, L2-normalised.

    Output size is ``2 * hidden_size`` (128 with ESNAC's hidden size 64).
    """

    def __init__(self, input_size: int = 272, hidden_size: int = 64, num_layers: int = 4) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, bidirectional=True)

    def forward(self, sequences: list[Tensor]) -> Tensor:
        """Embed ``sequences`` (each ``(n_i, input_size)``, lengths may differ) into ``(B, 2 * hidden_size)``.

        The sequences are packed, so each one's mean runs over its own n_i outputs and the result does not
        depend on what it is batched with.
        """
        if not sequences:
            raise ValueError("no sequences to embed")
        dtype = self.lstm.weight_ih_l0.dtype
        packed = nn.utils.rnn.pack_sequence([sequence.to(dtype) for sequence in sequences], enforce_sorted=False)
        outputs, _ = self.lstm(packed)
        padded, lengths = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True)  # zeros past each length
        means = padded.sum(1) / lengths.to(padded.device, dtype).unsqueeze(1)
        return F.normalize(means, dim=1)


def rbf_kernel(a: Tensor, b: Tensor, alpha: float = 0.01) -> Tensor:
    """``exp(-||a_i - b_j||^2 / (2 alpha))`` for rows of ``a`` (m, d) and ``b`` (n, d): shape (m, n).

    The squared distance is summed from differences, not expanded as ``|a|^2 + |b|^2 - 2ab``: no cancellation,
    and the gradient stays finite at zero distance (the diagonal).
    """
    squared = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)
    return torch.exp(-squared / (2 * alpha))


def _noisy_cholesky(x: Tensor, alpha: float, beta: float) -> Tensor:
    """Lower Cholesky factor of ``K + beta I`` for the embeddings ``x`` (float64)."""
    eye = torch.eye(len(x), dtype=x.dtype, device=x.device)
    return torch.linalg.cholesky(rbf_kernel(x, x, alpha) + beta * eye)


class GaussianProcess:
    """Zero-mean GP on embeddings with the fixed RBF kernel (``alpha``) and noise ``beta``; float64 inside.

    ``predict`` gives ESNAC's mean ``kᵀ(K+βI)⁻¹y`` and std ``sqrt(k(z,z) − kᵀ(K+βI)⁻¹k + β)``. The std is
    that of a noisy *observation* (β included), not of the latent function: the rewards themselves are noisy,
    it keeps σ ≥ sqrt(β) so that log σ in the LOO likelihood and z in EI stay finite, and it is what ESNAC
    computes. For the RBF kernel k(z, z) = 1.
    """

    def __init__(self, x: Tensor, y: Tensor, alpha: float = 0.01, beta: float = 0.05) -> None:
        if x.ndim != 2 or y.shape != (len(x),):
            raise ValueError(f"expected x (n, d) and y (n,), got {tuple(x.shape)} and {tuple(y.shape)}")
        self.x = x.detach().double()
        self.y = y.detach().to(self.x)
        self.alpha, self.beta = alpha, beta
        self.cholesky = _noisy_cholesky(self.x, alpha, beta)
        self.weights = torch.cholesky_solve(self.y.unsqueeze(1), self.cholesky).squeeze(1)  # (K+βI)⁻¹y

    def predict(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Predictive mean and std (float64, shape (m,)) at the embeddings ``z`` (m, d)."""
        z = z.detach().to(self.x)
        k = rbf_kernel(self.x, z, self.alpha)  # (n, m)
        mean = k.T @ self.weights
        v = torch.linalg.solve_triangular(self.cholesky, k, upper=False)  # kᵀ(K+βI)⁻¹k = |v|²
        variance = 1.0 - v.pow(2).sum(0) + self.beta
        return mean, variance.clamp_min(0).sqrt()  # ≥ β in exact arithmetic; the clamp guards rounding


def loo_log_likelihood(embeddings: Tensor, y: Tensor, alpha: float = 0.01, beta: float = 0.05) -> Tensor:
    """Mean over i of ``log N(y_i; μ_i, σ_i²)``, with μ_i and σ_i the GP prediction (GaussianProcess's
    formulas, β in σ) for point i from the other n − 1 points. Differentiable w.r.t. ``embeddings``.

    Computed exactly from one inverse, without n refits: with ``C = K + βI``, point i's Gaussian conditional
    on the others is ``μ_i = y_i − [C⁻¹y]_i / [C⁻¹]_ii`` and ``σ_i² = 1 / [C⁻¹]_ii`` (Rasmussen & Williams
    eq. 5.12). Here ``C_ii = k(x,x) + β`` and ``C_ij = k_ij`` off the diagonal, so this σ_i² is exactly
    ESNAC's ``k(x,x) − kᵀ(K₋ᵢ+βI)⁻¹k + β`` (the tests check it against the explicit loop).
    """
    if embeddings.ndim != 2 or len(embeddings) == 0 or y.shape != (len(embeddings),):
        raise ValueError(f"expected embeddings (n >= 1, d) and y (n,), got {tuple(embeddings.shape)} "
                         f"and {tuple(y.shape)}")
    x = embeddings.double()
    y = y.detach().to(x)
    inverse = torch.cholesky_inverse(_noisy_cholesky(x, alpha, beta))
    precision = inverse.diagonal()
    mean = y - (inverse @ y) / precision
    variance = 1.0 / precision
    log_density = -(0.5 * math.log(2 * math.pi) + 0.5 * torch.log(variance) + (y - mean).pow(2) / (2 * variance))
    return log_density.mean()


@dataclass
class FittedKernel:
    """A fitted embedding (eval mode) with its training points: predicts rewards of new architectures."""

    embedding: ArchitectureEmbedding
    embeddings: Tensor  # (n, 2 * hidden_size) final embeddings of the training sequences
    y: Tensor  # (n,) their rewards
    alpha: float
    beta: float
    log_likelihoods: list[float]  # LOO log-likelihood at each optimisation step, before its update
    gp: GaussianProcess = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.gp = GaussianProcess(self.embeddings, self.y, self.alpha, self.beta)

    @property
    def best_y(self) -> float:
        """The best reward among the kernel's own training points: EI's y*."""
        return float(self.y.max())

    @torch.no_grad()
    def embed(self, sequences: list[Tensor]) -> Tensor:
        """Embeddings of ``sequences`` (float32, ``(len(sequences), 2 * hidden_size)``), in chunks."""
        chunks = [self.embedding(sequences[start:start + PREDICT_CHUNK])
                  for start in range(0, len(sequences), PREDICT_CHUNK)]
        return torch.cat(chunks) if chunks else self.embeddings.new_zeros((0, self.embeddings.shape[1]))

    def predict(self, sequences: list[Tensor]) -> tuple[Tensor, Tensor]:
        """GP mean and std (float64, shape (m,)) for the architectures ``sequences``."""
        return self.gp.predict(self.embed(sequences))


def fit_kernel(sequences: list[Tensor], y: Tensor, *, seed: int, hidden_size: int = 64, num_layers: int = 4,
               lr: float = 1e-3, weight_decay: float = 5e-4, alpha: float = 0.01, beta: float = 0.05,
               max_steps: int = 100, ma_weight: float = 0.5, tolerance: float = 1e-3) -> FittedKernel:
    """Fit a fresh embedding to ``(sequences, y)`` by maximising the LOO log-likelihood (ESNAC's kernel fit).

    The LSTM's initial weights are a pure function of ``seed``: it is built under a forked RNG with only the
    CPU generator seeded, so the caller's RNG state (CPU and CUDA) is left as it was. Adam (``lr``,
    ``weight_decay``) updates the LSTM only; α and β stay fixed. ESNAC's stopping rule: at step j the
    log-likelihood ``ll`` is taken before the update, ``ma = ll`` at j = 0 and ``ma_weight·ll +
    (1 − ma_weight)·ma`` after, and the fit stops once ``j > 5`` and ``|ma − ll| < tolerance``, or after
    ``max_steps``. With fewer than two points there is no LOO objective, and the random LSTM is kept.
    """
    if not sequences or y.shape != (len(sequences),):
        raise ValueError(f"expected n >= 1 sequences and y of shape (n,), got {len(sequences)} and {tuple(y.shape)}")
    device = sequences[0].device
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed would also (re)seed CUDA
        embedding = ArchitectureEmbedding(sequences[0].shape[1], hidden_size, num_layers)
    embedding.to(device)
    y = y.detach().to(device, torch.float64)
    log_likelihoods: list[float] = []
    if len(sequences) >= 2:
        optimizer = torch.optim.Adam(embedding.lstm.parameters(), lr=lr, weight_decay=weight_decay)
        embedding.train()
        ma = 0.0
        for step in range(max_steps):
            ll = loo_log_likelihood(embedding(sequences), y, alpha, beta)
            optimizer.zero_grad(set_to_none=True)
            (-ll).backward()
            optimizer.step()
            value = ll.item()  # host sync, one per step: the stopping rule needs the value
            log_likelihoods.append(value)
            ma = value if step == 0 else ma_weight * value + (1 - ma_weight) * ma
            if step > 5 and abs(ma - value) < tolerance:
                break
    embedding.eval()
    with torch.no_grad():
        embeddings = embedding(sequences)
    return FittedKernel(embedding, embeddings, y, alpha, beta, log_likelihoods)


def expected_improvement(mean: Tensor, std: Tensor, best: float) -> Tensor:
    """EI for maximisation: ``(μ − y*)Φ(z) + σφ(z)`` with ``z = (μ − y*)/σ``, and ``max(μ − y*, 0)`` where
    σ = 0. Clamped at 0: far below y* the two terms cancel and rounding could leave a tiny negative value.
    """
    improvement = mean - best
    z = improvement / std
    density = torch.exp(-0.5 * z.pow(2)) / math.sqrt(2 * math.pi)
    ei = improvement * torch.special.ndtr(z) + std * density
    return torch.where(std > 0, ei, improvement).clamp_min(0)


def propose(kernel: FittedKernel, candidates: list[Tensor]) -> tuple[int, float]:
    """Index and EI of the candidate with the highest EI under ``kernel`` (the first one on ties)."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    mean, std = kernel.predict(candidates)
    ei = expected_improvement(mean, std, kernel.best_y)
    index = int(torch.argmax(ei))  # argmax returns the first maximal index
    return index, float(ei[index])
