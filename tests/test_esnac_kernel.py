"""ESNAC's learned kernel: the embedding, the GP against hand-computed values, the exact LOO likelihood, the
kernel fit (determinism, stopping rule) and expected improvement."""

from __future__ import annotations

import math

import pytest
import torch

from compresslib.esnac import kernel as kernel_module
from compresslib.esnac.kernel import (ArchitectureEmbedding, GaussianProcess, expected_improvement, fit_kernel,
                                      loo_log_likelihood, propose, rbf_kernel)

SMALL = {"hidden_size": 16, "num_layers": 2}  # a small LSTM keeps the fits fast; the logic is the same


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread is faster and repeatable


def _toy(n: int, seed: int = 0, d: int = 24) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Sequences of 2-8 one-hot layer rows whose column 10 holds the target y in every row."""
    generator = torch.Generator().manual_seed(seed)
    sequences, targets = [], []
    for _ in range(n):
        length = int(torch.randint(2, 9, (1,), generator=generator))
        sequence = torch.zeros(length, d)
        sequence[torch.arange(length), torch.randint(0, 10, (length,), generator=generator)] = 1
        target = float(torch.rand(1, generator=generator))
        sequence[:, 10] = target
        sequences.append(sequence)
        targets.append(target)
    return sequences, torch.tensor(targets)


def _stop_index(log_likelihoods: list[float], ma_weight: float = 0.5, tolerance: float = 1e-3) -> int | None:
    """The step at which ESNAC's moving-average rule stops on this sequence of values (None: never)."""
    ma = 0.0
    for step, value in enumerate(log_likelihoods):
        ma = value if step == 0 else ma_weight * value + (1 - ma_weight) * ma
        if step > 5 and abs(ma - value) < tolerance:
            return step
    return None


# --- embedding ------------------------------------------------------------------------------------------------

def test_embedding_is_normalised_and_has_twice_the_hidden_size():
    torch.manual_seed(0)
    embedding = ArchitectureEmbedding()
    out = embedding([torch.randn(n, 272) for n in (3, 7, 1)])
    assert out.shape == (3, 128) and out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)


def test_embedding_averages_over_each_sequences_own_layers_whatever_it_is_batched_with():
    torch.manual_seed(0)
    embedding = ArchitectureEmbedding(input_size=12, hidden_size=8, num_layers=2)
    short = torch.randn(3, 12)
    alone = embedding([short])
    batched = embedding([torch.randn(9, 12), short, torch.randn(5, 12)])
    assert (alone[0] - batched[1]).abs().max() < 1e-6
    with torch.no_grad():  # the definition: the plain LSTM over the sequence alone, mean over its 3 outputs
        outputs, _ = embedding.lstm(short.unsqueeze(0))
        expected = torch.nn.functional.normalize(outputs[0].mean(0), dim=0)
    assert (alone[0] - expected).abs().max() < 1e-6


# --- kernel and GP ----------------------------------------------------------------------------------------------

def test_rbf_kernel_values_and_shape():
    a, b = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    k = rbf_kernel(a, b, alpha=0.5)  # exp(-d^2)
    expected = torch.tensor([[1.0, math.exp(-4), math.exp(-2)], [math.exp(-1), math.exp(-5), math.exp(-1)]])
    assert k.shape == (2, 3) and torch.allclose(k, expected, atol=1e-7)


@pytest.mark.parametrize("alpha", [1.0, 0.01])
def test_gp_matches_the_hand_computed_two_point_posterior(alpha):
    beta = 0.05
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # orthogonal unit vectors, distance^2 = 2
    gp = GaussianProcess(x, torch.tensor([1.0, 0.0]), alpha=alpha, beta=beta)
    k = math.exp(-2 / (2 * alpha))  # off-diagonal of K; C = K + beta I = [[1+b, k], [k, 1+b]]
    det = (1 + beta) ** 2 - k ** 2
    z = torch.tensor([[1.0, 0.0], [2 ** -0.5, 2 ** -0.5]], dtype=torch.float64)  # a training point, the midpoint
    mean, std = gp.predict(z)
    # At x1: k_vec = [1, k]; C^-1 y = [1+b, -k] / det.
    mean_x1 = ((1 + beta) - k ** 2) / det
    var_x1 = 1 - ((1 + beta) - 2 * k ** 2 + (1 + beta) * k ** 2) / det + beta
    # At the midpoint: both kernel values are kz = exp(-(2 - sqrt 2) / (2 alpha)); [1, 1] is an eigenvector of C
    # with eigenvalue 1 + b + k.
    kz = math.exp(-(2 - math.sqrt(2)) / (2 * alpha))
    mean_mid = kz / (1 + beta + k)
    var_mid = 1 + beta - 2 * kz ** 2 / (1 + beta + k)
    assert mean.dtype == std.dtype == torch.float64
    assert abs(mean[0].item() - mean_x1) < 1e-9 and abs(std[0].item() - math.sqrt(var_x1)) < 1e-9
    assert abs(mean[1].item() - mean_mid) < 1e-9 and abs(std[1].item() - math.sqrt(var_mid)) < 1e-9


def test_gp_far_from_the_data_falls_back_to_the_prior_with_noise():
    gp = GaussianProcess(torch.eye(3, dtype=torch.float64), torch.tensor([0.3, 0.5, 0.9]))  # alpha 0.01
    mean, std = gp.predict(-torch.eye(3, dtype=torch.float64))
    assert torch.allclose(mean, torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(std, torch.full((3,), math.sqrt(1.05), dtype=torch.float64), atol=1e-12)


# --- LOO likelihood -------------------------------------------------------------------------------------------

def _loo_by_refitting(x: torch.Tensor, y: torch.Tensor, alpha: float, beta: float) -> float:
    """The definition: for each i, a GP on the other n - 1 points predicts point i."""
    terms = []
    for i in range(len(x)):
        rest = torch.arange(len(x)) != i
        mean, std = GaussianProcess(x[rest], y[rest], alpha, beta).predict(x[i:i + 1])
        terms.append(-(0.5 * math.log(2 * math.pi) + math.log(std.item())
                       + (y[i].item() - mean.item()) ** 2 / (2 * std.item() ** 2)))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("alpha", [0.5, 0.01])
def test_loo_log_likelihood_equals_the_explicit_leave_one_out_loop(alpha):
    generator = torch.Generator().manual_seed(1)
    centre = torch.randn(6, generator=generator)
    x = torch.nn.functional.normalize(centre + 0.1 * torch.randn(9, 6, generator=generator), dim=1).double()
    y = torch.rand(9, generator=generator, dtype=torch.float64)
    ll = loo_log_likelihood(x, y, alpha, 0.05)
    assert abs(ll.item() - _loo_by_refitting(x, y, alpha, 0.05)) < 1e-10


def test_loo_log_likelihood_is_differentiable_in_the_embeddings():
    generator = torch.Generator().manual_seed(2)
    x = torch.nn.functional.normalize(torch.randn(6, 4, generator=generator, dtype=torch.float64), dim=1)
    y = torch.rand(6, generator=generator, dtype=torch.float64)
    x.requires_grad_(True)
    loo_log_likelihood(x, y, 0.5, 0.05).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(lambda e: loo_log_likelihood(e, y, 0.5, 0.05), (x.detach().requires_grad_(),))
    with_float32 = torch.randn(5, 3, requires_grad=True)  # the LSTM's float32 output: gradient through the cast
    loo_log_likelihood(with_float32, torch.rand(5), 0.5, 0.05).backward()
    assert with_float32.grad.dtype == torch.float32 and with_float32.grad.abs().sum() > 0


def test_loo_log_likelihood_of_one_point_is_the_prior_density():
    ll = loo_log_likelihood(torch.ones(1, 3), torch.tensor([0.4], dtype=torch.float64), 0.01, 0.05)
    expected = -(0.5 * math.log(2 * math.pi) + 0.5 * math.log(1.05) + 0.4 ** 2 / (2 * 1.05))
    assert abs(ll.item() - expected) < 1e-12


# --- fitting --------------------------------------------------------------------------------------------------

def test_fit_is_a_pure_function_of_the_seed_and_leaves_the_global_rng_alone():
    sequences, y = _toy(8)
    state = torch.get_rng_state()
    first, second = (fit_kernel(sequences, y, seed=3, max_steps=10, **SMALL) for _ in range(2))
    assert torch.equal(torch.get_rng_state(), state)
    assert first.log_likelihoods == second.log_likelihoods
    candidates, _ = _toy(5, seed=9)
    for a, b in zip(first.predict(candidates), second.predict(candidates)):
        assert torch.equal(a, b)
    other = fit_kernel(sequences, y, seed=4, max_steps=1, **SMALL)
    assert other.log_likelihoods[0] != first.log_likelihoods[0]


def test_fit_raises_the_loo_likelihood_and_stops_by_esnacs_rule():
    sequences, y = _toy(20)
    fitted = fit_kernel(sequences, y, seed=0, lr=1e-2, **SMALL)
    lls = fitted.log_likelihoods
    assert lls[-1] > lls[0] + 0.5
    assert 6 < len(lls) < 100 and _stop_index(lls) == len(lls) - 1  # stopped at the first step the rule fired
    assert not fitted.embedding.training and fitted.best_y == y.max().item()
    # The stored GP is the one on the final embeddings; predicting the training sequences goes through it.
    mean, std = fitted.predict(sequences)
    expected_mean, expected_std = GaussianProcess(fitted.embeddings, y).predict(fitted.embeddings)
    assert torch.allclose(mean, expected_mean, atol=1e-12) and torch.allclose(std, expected_std, atol=1e-12)


def test_fit_respects_max_steps():
    sequences, y = _toy(8)
    fitted = fit_kernel(sequences, y, seed=0, max_steps=3, **SMALL)
    assert len(fitted.log_likelihoods) == 3  # the rule cannot fire before step 6


def test_one_point_takes_no_steps_and_still_predicts():
    sequences, _ = _toy(3)
    fitted = fit_kernel(sequences[:1], torch.tensor([0.0]), seed=0, **SMALL)  # ESNAC's teacher point at reward 0
    assert fitted.log_likelihoods == [] and fitted.best_y == 0.0
    mean, std = fitted.predict(sequences)
    assert mean.shape == std.shape == (3,)
    assert torch.allclose(mean, torch.zeros(3, dtype=torch.float64))
    assert abs(std[0].item() - math.sqrt(1 + 0.05 - 1 / 1.05)) < 1e-6  # the training point itself


def test_predict_embeds_in_chunks_with_the_same_result(monkeypatch):
    sequences, y = _toy(6)
    fitted = fit_kernel(sequences, y, seed=0, max_steps=2, **SMALL)
    candidates, _ = _toy(7, seed=5)
    whole = fitted.predict(candidates)
    monkeypatch.setattr(kernel_module, "PREDICT_CHUNK", 2)
    for a, b in zip(fitted.predict(candidates), whole):
        assert torch.allclose(a, b, atol=1e-9)


# --- acquisition ----------------------------------------------------------------------------------------------

def test_expected_improvement_against_hand_computed_values():
    mean = torch.tensor([0.5, 1.5, -9.5, 0.5], dtype=torch.float64)
    std = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    ei = expected_improvement(mean, std, best=0.5)
    assert abs(ei[0].item() - 0.3989422804014327) < 1e-12  # phi(0)
    assert abs(ei[1].item() - (0.8413447460685429 + 0.24197072451914337)) < 1e-12  # Phi(1) + phi(1) = 1.0833155
    assert 0 <= ei[2].item() < 1e-20  # improvement -10 sigma
    assert ei[3].item() == 0.0  # no uncertainty, no improvement
    assert expected_improvement(torch.tensor([0.7]), torch.tensor([0.0]), 0.5).item() == pytest.approx(0.2)


def test_expected_improvement_increases_with_mean_and_std():
    grid = torch.linspace(-3, 3, 61, dtype=torch.float64)
    by_mean = expected_improvement(grid, torch.full_like(grid, 0.5), best=0.0)
    by_std = expected_improvement(torch.full_like(grid, -0.2), grid.abs() + 0.05, best=0.0)[30:]
    assert (by_mean.diff() > 0).all() and (by_std.diff() > 0).all()


def test_propose_picks_the_highest_expected_improvement():
    sequences, y = _toy(10)
    fitted = fit_kernel(sequences, y, seed=0, max_steps=5, **SMALL)
    candidates, _ = _toy(30, seed=7)
    index, value = propose(fitted, candidates)
    mean, std = fitted.predict(candidates)
    ei = expected_improvement(mean, std, fitted.best_y)
    assert index == int(ei.argmax()) and value == ei.max().item()
    # Ties go to the first: the same best candidate twice.
    tied = [candidates[(index + 1) % 30], candidates[index], candidates[index].clone()]
    assert propose(fitted, tied)[0] == 1
