"""Bring your own network: a user's trained smooth-activation model converted with act="keep" (its own
activation modules become the ensembles' smooth branches), the hard swap, torch.fx rewrites of
functional calls, gates, BatchNorm re-estimation and distillation. The nets are written here, in the
style of third-party code, not taken from pea_deploy.nets."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pea_deploy.errors import ConversionError
from pea_deploy.pea import (alphas, conversion_summary, convert, ensembles, set_alpha, strip)
from pea_deploy.pea.own import HardsigmoidAsReLU6
from pea_deploy.train.bn import recalibrate_bn
from pea_deploy.train.distill import distillation_loss


class SqueezeExcite(nn.Module):
    def __init__(self, c, gate=nn.Hardsigmoid):
        super().__init__()
        self.fc1, self.act, self.fc2, self.gate = nn.Conv2d(c, 8, 1), nn.ReLU(inplace=True), nn.Conv2d(8, c, 1), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))


class MobileNetV3ish(nn.Module):
    """Hardswish (inplace, as torchvision builds it), SiLU, PReLU, SE gates."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.Hardswish(inplace=True))
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.BatchNorm2d(16), nn.SiLU(inplace=True))
        self.se = SqueezeExcite(16)
        self.pw = nn.Sequential(nn.Conv2d(16, 24, 1), nn.BatchNorm2d(24), nn.PReLU(24))
        self.head = nn.Linear(24, 5)

    def forward(self, x):
        return self.head(self.pw(self.se(self.dw(self.stem(x)))).mean((2, 3)))


class ConvNeXtish(nn.Module):
    """GELU (tanh approximation), a shared activation instance, Mish, ELU, CELU, SELU, Softplus,
    LeakyReLU, ReLU6 and a Sigmoid gate."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.shared = nn.GELU(approximate="tanh")
        self.acts = nn.ModuleList([nn.Mish(), nn.ELU(0.5), nn.CELU(2.0), nn.SELU(), nn.Softplus(beta=2.0),
                                   nn.LeakyReLU(0.2), nn.ReLU6()])
        self.se = SqueezeExcite(8, gate=nn.Sigmoid)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.shared(self.c1(x))
        x = self.shared(self.c2(x))
        for act in self.acts:
            x = act(self.c3(x))
        return self.fc(self.se(x).mean((2, 3)))


class YOLOish(nn.Module):
    """Activations called in forward(), as YOLO-style code writes them."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.c3 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.silu(self.b1(self.c1(x)))
        x = self.c2(x)
        x = x * torch.sigmoid(x)
        x = F.hardswish(self.c3(x))
        x = F.gelu(x, approximate="tanh")
        return self.fc(F.leaky_relu(x, 0.1).mean((2, 3)))


NETS = [MobileNetV3ish, ConvNeXtish, YOLOish]


def _trained(cls) -> nn.Module:
    """The net with non-trivial BatchNorm statistics and PReLU slopes (a 'trained' model)."""
    torch.manual_seed(0)
    net = cls().train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 3, 16, 16) * 2 + 0.3)
        for m in net.modules():
            if isinstance(m, nn.PReLU):
                m.weight.uniform_(0.05, 0.4)
    return net.eval()


@pytest.mark.parametrize("cls", NETS)
@pytest.mark.parametrize("variant", ["weighted", "stochastic"])
@pytest.mark.parametrize("target", ["relu", "relu6"])
def test_alpha_zero_is_the_original_network_exactly(cls, variant, target):
    net = _trained(cls)
    x = torch.randn(6, 3, 16, 16)
    converted = convert(copy.deepcopy(net), act="keep", variant=variant, target=target)
    assert ensembles(converted) and set(alphas(converted).values()) == {0.0}
    with torch.no_grad():
        assert torch.equal(converted.eval()(x), net(x))                     # max |diff| = 0 in float32
        if variant == "stochastic":  # in train mode too: at alpha 0 no element draws the target
            torch.manual_seed(1)
            a = converted.train()(x)
            torch.manual_seed(1)
            b = copy.deepcopy(net).train()(x)
            assert torch.equal(a, b)


def test_the_own_instance_is_the_smooth_branch_and_keeps_training():
    net = _trained(MobileNetV3ish)
    prelu = net.pw[2]
    converted = convert(net, act="keep")
    ens = converted.pw[2]
    assert ens.own is prelu and not net.stem[2].own.inplace             # the very instance, made out-of-place
    set_alpha(converted, 0.5)
    converted.train()(torch.randn(4, 3, 16, 16)).sum().backward()
    assert prelu.weight.grad is not None and prelu.weight.grad.abs().sum() > 0  # the slope still learns
    shared = convert(_trained(ConvNeXtish), act="keep")
    assert shared.shared is ensembles(shared)["shared"]                  # one instance, one ensemble
    assert len([k for k in shared.state_dict() if k.startswith("shared.")]) == 1  # shared.alpha


def test_strip_at_alpha_one_gives_plain_relu_and_relu6():
    for target, kind in (("relu", nn.ReLU), ("relu6", nn.ReLU6)):
        net = convert(_trained(ConvNeXtish), act="keep", target=target)
        set_alpha(net, 1.0)
        x = torch.randn(2, 3, 16, 16)
        before = net(x)
        strip(net)
        acts = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.ReLU6, nn.GELU, nn.Mish, nn.ELU))]
        assert acts and all(type(m) is kind for m in acts)
        assert torch.equal(net(x), before)


def test_functional_calls_are_rewritten_with_torch_fx():
    net = _trained(YOLOish)
    converted = convert(copy.deepcopy(net), act="keep")
    assert isinstance(converted, torch.fx.GraphModule) and len(ensembles(converted)) == 5
    rows = conversion_summary(converted, "relu")
    calls = {r["replaced"] for r in rows if "became" in r}
    assert calls == {"silu()", "x * sigmoid(x)", "hardswish()", "gelu()", "leaky_relu()"}
    x = torch.randn(3, 3, 16, 16)
    assert torch.equal(converted(x), net(x))
    set_alpha(converted, 1.0)
    strip(converted)
    assert "torch.sigmoid" not in converted.code and "functional" not in converted.code   # only module calls
    assert {type(m) for n, m in converted.named_modules() if n.startswith("pea_fx")} == {nn.ReLU}


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        x = self.c(x)
        if x.sum() > 0:          # data-dependent control flow: torch.fx cannot trace this
            x = F.silu(x)
        return F.gelu(x).mean((2, 3))


def test_untraceable_functional_calls_are_named_with_their_lines():
    with pytest.raises(ConversionError) as e:
        convert(Untraceable(), act="keep")
    text = str(e.value)
    assert "does not trace" in text and "F.silu at " in text and "F.gelu at " in text
    assert __file__ in text and "\n" not in text


def test_nothing_to_convert_says_so():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(ConversionError, match="found no"):
        convert(net, act="keep", target="relu")


def test_gates_are_left_and_hardsigmoid_has_an_exact_relu6_form():
    x = torch.cat([torch.linspace(-8, 8, 2_000_001), torch.randn(1_000_000) * 4])
    exact = HardsigmoidAsReLU6()
    assert torch.equal(exact(x), F.hardsigmoid(x))                        # bit for bit
    exact.fold_for_deploy()                                                # x * (1/6) for the converters
    assert (exact(x) - F.hardsigmoid(x)).abs().max() <= 6e-8              # one float32 ulp below 1
    relu = conversion_summary(convert(_trained(MobileNetV3ish), act="keep", target="relu"), "relu")
    left = {r["replaced"]: r["note"] for r in relu if r.get("left")}
    assert "gate" in left["Hardsigmoid"] and "ReLU-only profile rejects" in left["Hardsigmoid"]
    relu6 = convert(_trained(MobileNetV3ish), act="keep", target="relu6")
    assert isinstance(relu6.se.gate, HardsigmoidAsReLU6)
    sigmoid = conversion_summary(convert(_trained(ConvNeXtish), act="keep", target="relu6"), "relu6")
    assert any(r["replaced"] == "Sigmoid" and r.get("left") for r in sigmoid)  # no exact form: stays


def test_recalibrate_bn_is_the_plain_average_over_the_batches():
    net = _trained(MobileNetV3ish)
    net.head.train()  # a mixed state, restored afterwards
    batches = [torch.randn(16, 3, 16, 16) * 1.5 for _ in range(4)]
    bn = net.stem[1]
    with torch.no_grad():
        per_batch = [net.stem[0](b).mean((0, 2, 3)) for b in batches]
    assert recalibrate_bn(net, batches) == 4
    # float32 means of 4 x 16 x 64 values in another summation order: ~1e-7 relative on any CPU
    torch.testing.assert_close(bn.running_mean, torch.stack(per_batch).mean(0), rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.1 and not bn.training and net.head.training
    assert recalibrate_bn(nn.Sequential(nn.Linear(2, 2)), batches) == 0


def test_distillation_loss():
    s = torch.randn(8, 10, requires_grad=True)
    assert distillation_loss(s, s.detach(), 4.0).abs() < 1e-6              # nothing to learn from oneself
    loss = distillation_loss(s, torch.randn(8, 10), 4.0)
    loss.backward()
    assert loss > 0 and s.grad.abs().sum() > 0
    assert distillation_loss(torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3), 2.0) > 0  # per pixel


class LearnedSwish(nn.Module):
    """A user's own activation class with a learnt parameter."""

    def __init__(self):
        super().__init__()
        self.beta = nn.Parameter(torch.tensor(1.5))

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


def test_a_users_own_activation_class_is_registered_once_and_wrapped():
    from pea_deploy import registry

    net = nn.Sequential(nn.Conv2d(3, 4, 3), LearnedSwish(), nn.Flatten(), nn.LazyLinear(2))
    net(torch.randn(1, 3, 8, 8))
    with pytest.raises(ConversionError, match="found no"):
        convert(copy.deepcopy(net), act="keep")
    registry.register_own_activation(LearnedSwish)
    try:
        x = torch.randn(2, 3, 8, 8)
        converted = convert(copy.deepcopy(net), act="keep")
        assert torch.equal(converted(x), net(x)) and isinstance(converted[1].own, LearnedSwish)
        assert "1.own.beta" in converted.state_dict()                  # the learnt beta is kept
    finally:
        registry.OWN_ACTIVATIONS.unregister("LearnedSwish")
