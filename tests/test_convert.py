import pytest
import torch
from torch import nn

from pea_deploy.errors import AlphaNotOneError, ConversionError
from pea_deploy.nets import build_net
from pea_deploy.registry import NETS
from pea_deploy.pea import PEAEnsemble, alphas, convert, ensembles, set_alpha, strip


class SharedReLU(nn.Module):
    """One ReLU instance used twice in forward and registered under two names."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 4)
        self.act = nn.ReLU()
        self.alias = self.act

    def forward(self, x):
        return self.alias(self.fc2(self.act(self.fc1(x))))


class FunctionalReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.nn.functional.relu(self.fc(x))


def test_shared_relu_becomes_one_shared_ensemble():
    m = convert(SharedReLU(), act="mish")
    assert isinstance(m.act, PEAEnsemble) and m.act is m.alias
    assert len(ensembles(m)) == 1
    set_alpha(m, 1.0)
    strip(m)
    assert type(m.act) is nn.ReLU and m.act is m.alias


def test_resnet_block_relu_is_shared_like_torchvision():
    net = build_net("resnet18", 10, 3, stem="small", width=0.25)
    n_relu_calls = 1 + 8 * 2  # stem + two per BasicBlock
    convert(net, act="gelu", variant="stochastic")
    assert len(ensembles(net)) == 9 < n_relu_calls


def test_functional_relu_is_named_in_the_error():
    with pytest.raises(ConversionError, match=r"functional calls in forward\(\): relu"):
        convert(FunctionalReLU())


def test_already_converted_and_other_activations():
    m = convert(SharedReLU())
    with pytest.raises(ConversionError, match="already converted"):
        convert(m)
    with pytest.raises(ConversionError, match="GELU x1"):
        convert(nn.Sequential(nn.Linear(2, 2), nn.GELU()))


def test_relu6_target_converts_relu6_modules():
    net = build_net("mobilenet-v1", 10, 3, width=0.25, relu6=True, stem="small")
    with pytest.raises(ConversionError):
        convert(net, target="relu")  # a ReLU6 net has no nn.ReLU
    convert(net, target="relu6")
    assert len(ensembles(net)) == 27


def test_strip_refuses_below_one_and_is_exact_at_one():
    torch.manual_seed(0)
    net = convert(build_net("resnet18", 10, 3, stem="small", width=0.25), act="swish").eval()
    set_alpha(net, 0.999)
    with pytest.raises(AlphaNotOneError, match="alpha=0.999"):
        strip(net)
    set_alpha(net, 1.0)
    x = torch.randn(4, 3, 16, 16)
    before = net(x)
    strip(net)
    assert not ensembles(net) and alphas(net) == {}
    assert torch.equal(net(x), before)


@pytest.mark.parametrize("name", sorted(NETS.names()))
def test_every_net_converts(name):
    size = 64 if name in ("alexnet-bn", "yolo-det") else 16
    stem = {"stem": "small"} if "stem" in NETS.get(name).options else {}
    net = build_net(name, 7, 3, width=0.25, **stem)
    convert(net, act="gelu")
    assert len(ensembles(net)) > 0
    assert not any(type(m) is nn.ReLU for m in net.modules())
    out = net.eval()(torch.randn(2, 3, size, size))
    if name == "yolo-det":  # one (N, 4 box distances + classes, h, w) map per stride 8, 16, 32
        assert [tuple(o.shape) for o in out] == [(2, 11, 8, 8), (2, 11, 4, 4), (2, 11, 2, 2)]
        return
    expected = (2, 7, size, size) if name == "erfnet-seg" else (2, 7)  # per-pixel logits
    assert out.shape == expected
