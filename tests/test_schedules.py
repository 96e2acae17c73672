"""Learning-rate schedules land on the originals' epochs; the cosine schedule on hand-computed steps."""

from __future__ import annotations

import math

import pytest
import torch

from compresslib.schedules import CosineSchedule, PlateauHalving, build_schedule


def _rates(schedule, epochs: int, accuracy: float = 0.5) -> list[float]:
    rates = []
    for epoch in range(epochs):
        rates.append(schedule.lr)
        schedule.update(epoch, accuracy)
    return rates


def test_cifar100_follows_qd_update_after_epoch():
    """QD: after 0-based epoch e the rate becomes lr0 * 0.2^#{t in 60,120,160 : e > t}."""
    rates = _rates(build_schedule("cifar100", 0.1), 200)
    expected = [0.1] + [0.1 * 0.2 ** sum(e - 1 > t for t in (60, 120, 160)) for e in range(1, 200)]
    assert rates == pytest.approx(expected)
    assert rates[61] == pytest.approx(0.1) and rates[62] == pytest.approx(0.02)
    assert rates[162] == pytest.approx(0.1 * 0.2**3)


def test_multistep_equals_torch_multisteplr():
    milestones, gamma = [3, 7], 0.5
    ours = _rates(build_schedule("multistep", 0.4, milestones, gamma), 10)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.4)
    reference = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma)
    theirs = []
    for _ in range(10):
        theirs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    assert ours == pytest.approx(theirs)


def test_step_schedules_resume_at_any_epoch():
    full = _rates(build_schedule("cifar100", 0.1), 200)
    assert build_schedule("cifar100", 0.1, start_epoch=130).lr == pytest.approx(full[130])
    assert _rates(build_schedule("constant", 0.3), 5) == [0.3] * 5


def test_generic_halves_after_ten_flat_epochs_with_cooldown_and_stops():
    schedule = PlateauHalving(1.0)
    accuracy = [0.5 + 0.01 * e for e in range(5)] + [0.54] * 60  # improves for 5 epochs, then flat
    rates, stopped_at = [], None
    for epoch, acc in enumerate(accuracy):
        rates.append(schedule.lr)
        if schedule.update(epoch, acc):
            stopped_at = epoch
            break
    # last improvement at epoch 4; epochs 5..14 are the 10 flat ones -> halve after epoch 14,
    # then at least 8 epochs until the next halving (after 22, 30), and stop when > 30 flat epochs.
    assert rates[15] == 0.5 and rates[14] == 1.0
    assert rates[23] == 0.25 and rates[22] == 0.5
    assert rates[31] == 0.125
    assert stopped_at == 4 + 31


def test_generic_needs_more_than_a_tenth_of_a_percent_and_caps_halvings():
    schedule = PlateauHalving(1.0)
    schedule.update(0, 0.5)
    schedule.update(1, 0.5009)  # +0.09 %: not an improvement
    assert schedule.epochs_without_improvement == 1
    schedule.update(2, 0.5020)
    assert schedule.epochs_without_improvement == 0
    capped = PlateauHalving(1.0, patience=1, cooldown=0, stop_patience=10**6)
    stops = [capped.update(e, 0.1) for e in range(13)]
    assert capped.halvings == 12 and stops.index(True) == 12  # stop once halved more than 11 times


def test_generic_state_round_trip():
    a = PlateauHalving(0.1)
    for epoch, acc in enumerate([0.3, 0.4, 0.4, 0.4]):
        a.update(epoch, acc)
    b = PlateauHalving(0.1)
    b.load_state_dict(a.state_dict())
    assert [a.update(4 + e, 0.4) for e in range(20)] == [b.update(4 + e, 0.4) for e in range(20)]
    assert a.lr == b.lr


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown schedule 'linear'.*generic, cifar100, multistep, constant, cosine"):
        build_schedule("linear", 0.1)


# lr0 0.1, 5 epochs of 4 steps (T = 20), 1 warmup epoch (W = 4), floor 0.1 * lr0 = 0.01
COSINE = dict(lr0=0.1, epochs=5, steps_per_epoch=4, warmup_epochs=1, floor_fraction=0.1)


@pytest.mark.parametrize(("step", "expected"), [
    (0, 0.1 * 1 / 5),  # warmup: lr0 (s + 1) / (W + 1)
    (1, 0.1 * 2 / 5),  # mid-warmup
    (3, 0.1 * 4 / 5),  # the last warmup step
    (4, 0.1),  # warmup done: the decay starts at lr0
    (8, 0.01 + 0.045 * (1 + math.cos(math.pi / 4))),  # a quarter of the decay: 0.0868198...
    (12, 0.055),  # halfway: (lr0 + floor) / 2
    (19, 0.01 + 0.045 * (1 - math.cos(math.pi / 16))),  # the last step: 0.0108646..., not yet the floor
    (20, 0.01),  # T: the floor, the rate after the last step
])
def test_cosine_rate_at_hand_computed_steps(step: int, expected: float):
    assert CosineSchedule(**COSINE).lr_at(step) == pytest.approx(expected, rel=1e-12)


def test_cosine_without_warmup_equals_torch_cosine_annealing_per_step():
    ours = CosineSchedule(0.4, epochs=3, steps_per_epoch=5, floor_fraction=0.25)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.4)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=15, eta_min=0.1)
    theirs = []
    for _ in range(15):
        theirs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    assert [rate for epoch in range(3) for rate in ours.epoch_rates(epoch)] == pytest.approx(theirs)
    assert ours.lr_at(0) == 0.4 and ours.lr_at(15) == 0.1


def test_cosine_epochs_follow_the_step_counter_and_resume_anywhere():
    """An epoch's rates are its steps' rates; ``lr`` (the history's rate) is its first step's, after ``update`` too;
    a schedule built at any epoch (a resumed run) is where an uninterrupted one is, with no state to restore."""
    schedule = build_schedule("cosine", 0.1, epochs=5, steps_per_epoch=4, warmup_epochs=1, floor_fraction=0.1)
    assert schedule.epoch_rates(0) == pytest.approx([0.02, 0.04, 0.06, 0.08])
    rates = []
    for epoch in range(5):
        rates.append(schedule.lr)
        assert schedule.epoch_rates(epoch)[0] == schedule.lr
        assert schedule.update(epoch, 0.5) is False  # never stops early
    assert rates == pytest.approx([0.02, 0.1, 0.01 + 0.045 * (1 + math.cos(math.pi / 4)), 0.055,
                                   0.01 + 0.045 * (1 + math.cos(3 * math.pi / 4))])
    assert schedule.lr == pytest.approx(0.01)  # after the last epoch: the floor
    resumed = build_schedule("cosine", 0.1, start_epoch=3, epochs=5, steps_per_epoch=4, warmup_epochs=1,
                             floor_fraction=0.1)
    assert resumed.lr == rates[3] and resumed.epoch_rates(3) == CosineSchedule(**COSINE).epoch_rates(3)
    assert resumed.state_dict() == {}


@pytest.mark.parametrize(("settings", "message"), [
    ({"warmup_epochs": 5}, "0 <= warmup_epochs < epochs"),
    ({"floor_fraction": 1.0}, "0 <= floor_fraction < 1"),
    ({"steps_per_epoch": 0}, "steps_per_epoch >= 1"),
])
def test_cosine_refuses_settings_it_cannot_follow(settings: dict, message: str):
    with pytest.raises(ValueError, match=message):
        CosineSchedule(**COSINE | settings)


def test_cosine_refuses_steps_outside_the_run_and_a_call_without_its_length():
    for step in (-1, 21):
        with pytest.raises(ValueError, match=f"step {step} is outside the schedule's 0 to 20 steps"):
            CosineSchedule(**COSINE).lr_at(step)
    with pytest.raises(ValueError, match="needs the run's epochs and steps_per_epoch"):
        build_schedule("cosine", 0.1)
