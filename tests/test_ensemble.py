import math

import pytest
import torch
from torch import nn

from pea_deploy.pea import StochasticEnsemble, WeightedEnsemble, ensemble, smooth_activation, target_activation

X = torch.linspace(-8, 8, 2001, dtype=torch.float32).reshape(1, 1, 1, -1)


def closed_form_act(name, x, beta=1.0):
    if name == "gelu":
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    if name in ("silu", "swish"):
        return x / (1 + torch.exp(-beta * x))
    if name == "mish":
        return x * torch.tanh(torch.log1p(torch.exp(x)))
    if name == "elu":
        return torch.where(x > 0, x, torch.exp(x) - 1)
    raise AssertionError(name)


def closed_form_target(name, x):
    return x.clamp(min=0) if name == "relu" else x.clamp(0, 6)


ACTS = [("gelu", 1.0), ("silu", 1.0), ("swish", 1.7), ("mish", 1.0), ("elu", 1.0)]


@pytest.mark.parametrize("act,beta", ACTS)
@pytest.mark.parametrize("target", ["relu", "relu6"])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_weighted_matches_closed_form(act, beta, target, alpha):
    m = WeightedEnsemble(act, target, swish_beta=beta)
    m.set_alpha(alpha)
    x = X.double()
    want = alpha * closed_form_target(target, x) + (1 - alpha) * closed_form_act(act, x, beta)
    got = m(X).double()
    assert torch.allclose(got, want, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("act,beta", ACTS)
def test_endpoints_are_exact(act, beta):
    spec, relu = smooth_activation(act, beta), target_activation("relu")
    for cls in (WeightedEnsemble, StochasticEnsemble):
        m = cls(act, "relu", swish_beta=beta).train()
        m.set_alpha(1.0)
        assert torch.equal(m(X), relu.fn(X)), "alpha == 1 must be bit-exact ReLU"
        m.set_alpha(0.0)
        assert torch.equal(m(X), spec.fn(X)), "alpha == 0 must be bit-exact Act"


def test_stochastic_picks_per_element_and_eval_is_expectation():
    torch.manual_seed(0)
    m = StochasticEnsemble("gelu", "relu").train()
    m.set_alpha(0.3)
    x = torch.randn(64, 8, 4, 4)
    y = m(x)
    relu_hit = y == torch.relu(x)  # the target is exact on every path
    # The fused CPU kernel's float32 GELU and F.gelu are each within 1.2e-6 of the exact value for
    # |x| < 6 (vector polynomial approximations: their error does not depend on the CPU), so 1e-5
    # holds anywhere; an element is decided where the branches are 10x further apart than that.
    gelu_hit = (y - nn.functional.gelu(x)).abs() <= 1e-5
    decided = (torch.relu(x) - nn.functional.gelu(x)).abs() > 1e-4
    assert torch.all(relu_hit | gelu_hit)
    share = (relu_hit & decided).float().sum() / decided.float().sum()
    assert abs(share.item() - 0.3) < 0.02
    m.eval()
    w = WeightedEnsemble("gelu", "relu")
    w.set_alpha(0.3)
    assert torch.equal(m(x), w(x))


@pytest.mark.parametrize("granularity", ["channel", "tensor"])
def test_stochastic_granularity(granularity):
    torch.manual_seed(1)
    m = StochasticEnsemble("mish", "relu", granularity=granularity).train()
    m.set_alpha(0.5)
    x = torch.randn(16, 6, 5, 5) + 0.5
    from_relu = (m(x) == torch.relu(x)) & (torch.relu(x) != nn.functional.mish(x))
    per_channel = from_relu.flatten(2).float().mean(2)
    assert torch.all((per_channel == 0) | (per_channel == 1)), "one draw covers a whole channel"
    if granularity == "tensor":
        assert per_channel.min() == per_channel.max()


@pytest.mark.parametrize("act,beta", ACTS)
@pytest.mark.parametrize("target", ["relu", "relu6"])
def test_gradcheck_float64(act, beta, target):
    a, t = smooth_activation(act, beta), target_activation(target)
    # keep away from the kinks of relu/relu6 where the derivative is undefined
    x = (torch.rand(40, dtype=torch.float64) * 14 - 7)
    x = x[(x.abs() > 1e-2) & ((x - 6).abs() > 1e-2)].requires_grad_()
    for w in (0.0, 0.37, 1.0, torch.rand(x.shape) < 0.5):
        assert torch.autograd.gradcheck(lambda v: ensemble(v, w, a, t), (x,))


def _saved_bytes(fn, x):
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x).sum()
    return len(saved), sum(t.numel() * t.element_size() for t in saved)


def test_weighted_saves_only_its_input():
    x = torch.randn(32, 16, 8, 8, requires_grad=True)
    m = WeightedEnsemble("gelu", "relu")
    m.set_alpha(0.4)
    count, nbytes = _saved_bytes(m, x)
    assert count == 2  # the input and the 0-d alpha the op reads on the device
    assert nbytes == x.numel() * 4 + 4

    def naive(v):
        return 0.4 * torch.relu(v) + 0.6 * nn.functional.gelu(v)

    naive_count, naive_bytes = _saved_bytes(naive, x)
    assert naive_bytes >= 2 * x.numel() * 4, "the unfused form keeps two activation outputs"
    assert nbytes < naive_bytes


def test_stochastic_by_channel_saves_input_and_bool_mask():
    x = torch.randn(32, 16, 8, 8, requires_grad=True)
    m = StochasticEnsemble("swish", "relu", granularity="channel").train()
    m.set_alpha(0.5)
    count, nbytes = _saved_bytes(m, x)
    assert count == 2
    assert nbytes == x.numel() * 4 + 32 * 16 * 1


def test_alpha_is_a_buffer_in_state_dict():
    m = WeightedEnsemble()
    m.set_alpha(0.25)
    assert "alpha" in m.state_dict() and not list(m.parameters())
    m2 = WeightedEnsemble()
    m2.load_state_dict(m.state_dict())
    assert float(m2.alpha) == 0.25
    with pytest.raises(ValueError):
        m.set_alpha(1.5)


def test_loaded_alpha_is_used_by_forward():
    src = WeightedEnsemble("gelu", "relu")
    src.set_alpha(1.0)
    dst = WeightedEnsemble("gelu", "relu")
    dst.load_state_dict(src.state_dict())
    assert torch.equal(dst(X), torch.relu(X))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("act", ["gelu", "mish"])
def test_chunked_blend_matches_closed_form_on_large_tensors(act, layout):
    """Tensors above the chunk size take the chunked path (channels_last the whole-tensor one):
    forward and gradient must equal the closed form either way."""
    ens_module = __import__("importlib").import_module("pea_deploy.pea.ensemble")

    x = torch.randn(2, 16, 128, 128, dtype=torch.float64)  # 524288 elements = 2 chunks
    assert x.numel() > ens_module.CHUNK
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    g = torch.randn_like(x)
    a, t = smooth_activation(act), target_activation("relu")
    for weight in (0.3, torch.rand(x.shape) < 0.5):
        xa = x.clone().requires_grad_(True)
        out = ensemble(xa, weight, a, t)
        out.backward(g)
        xr = x.clone().requires_grad_(True)
        w = weight.double() if isinstance(weight, torch.Tensor) else weight
        ref = w * torch.relu(xr) + (1 - w) * a.fn(xr)
        ref.backward(g)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(xa.grad, xr.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act,variant", [("gelu", "weighted"), ("mish", "stochastic"), ("swish", "weighted"),
                                         ("keep", "weighted")])
def test_a_converted_net_pickles_mid_transition(tmp_path, act, variant):
    """torch.save(model) (a whole module, as Ultralytics' and many users' loops save) mid-transition
    loads back computing the same function, alpha and a model's own Act module included."""
    from pea_deploy.pea import convert, set_alpha

    torch.manual_seed(0)
    smooth = nn.SiLU() if act == "keep" else nn.ReLU()
    net = convert(nn.Sequential(nn.Conv2d(3, 4, 3), smooth, nn.Conv2d(4, 4, 3), smooth), act=act, variant=variant)
    set_alpha(net, 0.3)
    x = torch.randn(2, 3, 8, 8)
    want = net.eval()(x)
    torch.save(net, tmp_path / "net.pt")
    back = torch.load(tmp_path / "net.pt", weights_only=False)
    assert torch.equal(back(x), want)
    assert back[1] is back[3]                          # one shared instance stays one
    back.load_state_dict({k: torch.tensor(1.0) if k.endswith("alpha") else v for k, v in back.state_dict().items()})
    assert torch.equal(back(x), nn.Sequential(back[0], nn.ReLU(), back[2], nn.ReLU())(x))   # the load hook survived
