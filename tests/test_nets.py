"""Networks: shapes, conditioning (tensor and TensorDict), gradients, clear errors."""

import pytest
import torch

from genpolicy.nets import NETS, GaussianFourierTime, MLPUNet, flatten_condition, make_net


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("cond_dim", [0, 5])
def test_shapes_and_gradients(name, cond_dim):
    net = make_net(name, 3, cond_dim)
    x, t = torch.randn(7, 3, requires_grad=True), torch.rand(7)
    cond = torch.randn(7, cond_dim) if cond_dim else None
    out = net(x, t, cond)
    assert out.shape == (7, 3)
    (out - 1).pow(2).sum().backward()  # not out^2: DiT's zero-initialised output makes that gradient 0
    assert x.grad is not None and torch.isfinite(x.grad).all()
    trained = [p for p in net.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert trained, "some parameters must receive gradient"


def test_outputs_depend_on_time_and_condition():
    net = make_net("unet", 2, 4)
    x, c = torch.randn(5, 2), torch.randn(5, 4)
    a = net(x, torch.full((5,), 0.2), c)
    assert not torch.allclose(a, net(x, torch.full((5,), 0.7), c))
    assert not torch.allclose(a, net(x, torch.full((5,), 0.2), c + 1))


def test_unet_has_the_papers_widths():
    net = MLPUNet(6, 17)
    widths = [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)]
    for w in (512, 256, 128):
        assert w in widths


def test_fourier_features():
    emb = GaussianFourierTime(16, scale=2.0)
    e = emb(torch.tensor([0.0, 0.5]))
    assert e.shape == (2, 16)
    torch.testing.assert_close(e[0, :8], torch.zeros(8))
    torch.testing.assert_close(e[0, 8:], torch.ones(8))
    with pytest.raises(ValueError, match="even"):
        GaussianFourierTime(15)


def test_flatten_condition_tensordict():
    td = pytest.importorskip("tensordict")
    c = td.TensorDict({"b": torch.ones(3, 2), "a": torch.zeros(3, 2, 2)}, batch_size=[3])
    flat = flatten_condition(c)
    assert flat.shape == (3, 6)
    torch.testing.assert_close(flat[:, :4], torch.zeros(3, 4))  # "a" first (sorted keys)
    assert flatten_condition(None) is None


def test_unknown_net():
    with pytest.raises(ValueError, match="unknown network"):
        make_net("transformer-xl", 2)
