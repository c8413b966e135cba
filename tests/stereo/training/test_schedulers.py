import math
from types import SimpleNamespace

import pytest
import torch

from stereo.training.optim import build_optimizer
from stereo.training.schedulers import LrSchedule, build_scheduler, schedule_from_config


def _optim_cfg(**kw):
    base = dict(optimizer="AdamW", lr=1e-3, weight_decay=1e-4, momentum=0.9, lr_scheduler="MultiStepLR",
                lr_steps=[10, 20], lr_step_size=5, lr_decay=0.1, min_lr=1e-6, warmup_steps=0)
    base.update(kw)
    return SimpleNamespace(**base)


def _torch_lrs(make, steps, lr=1e-3):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("name,make", [
    ("MultiStepLR", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [10, 20], 0.1)),
    ("StepLR", lambda o: torch.optim.lr_scheduler.StepLR(o, 5, 0.1)),
    ("CosineAnnealingLR", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 30, eta_min=1e-6)),
    ("OneCycleLR", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1e-3, total_steps=30)),
    ("PolynomialLR", lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=30, power=1.0)),
])
def test_schedules_match_torch_without_warmup(name, make):
    sched = schedule_from_config(_optim_cfg(lr_scheduler=name), total_steps=30)
    ours = [sched.lr(s) for s in range(30)]
    assert ours == pytest.approx(_torch_lrs(make, 30), rel=1e-6, abs=1e-12)


def test_lambda_lr_decays_linearly_to_zero():
    sched = LrSchedule("LambdaLR", base_lr=1.0, total_steps=100)
    assert [sched.lr(s) for s in (0, 25, 50, 100, 150)] == pytest.approx([1.0, 0.75, 0.5, 0.0, 0.0])


def test_linear_warmup_really_applies_and_then_hands_over():
    sched = LrSchedule("MultiStepLR", base_lr=1e-3, total_steps=100, warmup_steps=4, milestones=(50,))
    assert [sched.lr(s) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert sched.lr(50) == pytest.approx(1e-4)


def test_warmup_multiplies_cosine():
    sched = LrSchedule("CosineAnnealingLR", base_lr=1.0, total_steps=10, warmup_steps=2, min_lr=0.0)
    assert sched.lr(0) == pytest.approx(0.5 * 1.0)  # cos factor at s=0 is 1
    assert sched.lr(5) == pytest.approx(0.5)  # mid-cosine, warm-up over
    assert sched.lr(10) == pytest.approx(0.0, abs=1e-12)


def test_scheduler_is_stepped_per_optimizer_step_and_resumes_exactly():
    cfg = _optim_cfg(lr_scheduler="StepLR", lr_step_size=3, warmup_steps=2)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], cfg)
    sched = build_scheduler(opt, cfg, total_steps=20)
    seen = []
    for _ in range(7):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([5e-4, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-5])
    state = sched.state_dict()
    opt2 = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
    sched2 = build_scheduler(opt2, _optim_cfg(lr_scheduler="StepLR", lr_step_size=99), total_steps=20)
    sched2.load_state_dict(state)  # the checkpointed schedule wins over a changed spec
    assert sched2.get_last_lr()[0] == pytest.approx(opt.param_groups[0]["lr"])
    sched.step(), sched2.step()
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())


@pytest.mark.parametrize("field,value,match", [
    ("lr_scheduler", "Bogus", "lr_scheduler='Bogus'.*MultiStepLR"),
    ("warmup_steps", -1, "warmup_steps"),
    ("lr_steps", [20, 10], "lr_steps must be increasing"),
])
def test_bad_schedule_settings_name_the_key(field, value, match):
    with pytest.raises(ValueError, match=match):
        schedule_from_config(_optim_cfg(**{field: value}), total_steps=30)


def test_multistep_alias_from_tao_enum():
    assert schedule_from_config(_optim_cfg(lr_scheduler="MultiStep"), 30).name == "MultiStepLR"


def test_optimizers():
    lin = torch.nn.Linear(2, 2)
    lin.bias.requires_grad_(False)
    adam = build_optimizer(lin.parameters(), _optim_cfg())
    assert isinstance(adam, torch.optim.AdamW) and len(adam.param_groups[0]["params"]) == 1
    sgd = build_optimizer(lin.parameters(), _optim_cfg(optimizer="SGD", momentum=0.5))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.5
    with pytest.raises(ValueError, match="optimizer='Adam'.*AdamW"):
        build_optimizer(lin.parameters(), _optim_cfg(optimizer="Adam"))
    with pytest.raises(ValueError, match="train.optim.lr"):
        build_optimizer(lin.parameters(), _optim_cfg(lr=0.0))
    assert math.isfinite(adam.param_groups[0]["lr"])
