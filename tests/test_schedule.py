import math

import pytest

from pea_deploy.errors import ConfigError
from pea_deploy.nets import build_net
from pea_deploy.pea import AlphaSchedule, AlphaScheduler, alpha_at, alphas, convert


def test_eq2_paper_schedule_120_epochs_transition_5_to_115():
    spe = 5004  # ImageNet at batch 256
    s = AlphaSchedule.from_epochs(5, 115, spe)
    t_trans = 110 * spe
    assert alpha_at(0, s) == 0.0
    assert alpha_at(5 * spe - 1, s) == 0.0           # last iteration of the initial phase
    assert alpha_at(5 * spe, s) == 0.0               # t = 0 of the transition
    for t in (1, 777, t_trans // 2, t_trans - 1):
        assert alpha_at(5 * spe + t, s) == pytest.approx(t / t_trans, abs=0, rel=1e-15)
    assert alpha_at(115 * spe, s) == 1.0             # final phase: exactly 1
    assert alpha_at(120 * spe - 1, s) == 1.0
    assert s.phase_at(5 * spe - 1) == "initial" and s.phase_at(60 * spe) == "transition"
    assert s.phase_at(115 * spe) == "final"


def test_monotone_and_cosine_ramp():
    lin = AlphaSchedule(10, 110)
    cos = AlphaSchedule(10, 110, "cosine")
    vals = [lin.alpha_at(s) for s in range(0, 130)]
    assert vals == sorted(vals)
    assert cos.alpha_at(60) == pytest.approx(0.5)
    assert cos.alpha_at(35) == pytest.approx(0.5 * (1 - math.cos(math.pi * 0.25)))
    assert cos.alpha_at(110) == 1.0


def test_bad_schedules():
    with pytest.raises(ConfigError):
        AlphaSchedule(10, 5)
    with pytest.raises(ConfigError, match="did you mean 'cosine'"):
        AlphaSchedule(0, 5, "cosin")


def test_scheduler_sets_every_ensemble_and_round_trips():
    net = convert(build_net("resnet18", 10, 1, stem="small", width=0.25))
    sched = AlphaScheduler(net, AlphaSchedule(2, 6))
    seen = [sched.step() for _ in range(4)]
    assert seen == [0.0, 0.0, 0.0, 0.25]
    assert set(alphas(net).values()) == {0.25}
    state = sched.state_dict()
    net2 = convert(build_net("resnet18", 10, 1, stem="small", width=0.25))
    sched2 = AlphaScheduler(net2, AlphaSchedule(2, 6))
    sched2.load_state_dict(state)
    assert sched2.step() == sched.step() == 0.5
    assert alphas(net2) == alphas(net)
