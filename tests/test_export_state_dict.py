"""export_state_dict: a constrained model's checkpoint for the plain nn.Conv2d architecture."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrizations

from cnnconv.constraints import constrain, constraint_names, export_state_dict
from cnnconv.conv import convert
from cnnconv.models import SmallCNN


def _rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm())


def _trained(names):
    """A SmallCNN whose first layer is constrained and moved by a few optimizer steps."""
    net = SmallCNN(3, first_layer="learnable_hand", kernel_size=5, noise=0.2)
    constrain(net.first, *names)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    x, y = torch.rand(8, 1, 16, 16), torch.randint(0, 3, (8,))
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval()


def _plain():
    net = SmallCNN(3, first_layer="random", kernel_size=5)
    net.first = nn.Conv2d(1, 8, 5, padding="same")
    return net.eval()


@pytest.mark.parametrize("names", [("zero_sum", "unit_norm"), ("rank_one", "zero_sum"), ("antisymmetric",)])
def test_export_loads_strictly_into_plain_model_with_equal_outputs(names):
    net = _trained(names)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    constraints = constraint_names(net.first)
    sd = export_state_dict(net)
    assert "first.weight" in sd and not any("parametrizations" in k for k in sd)
    plain = _plain()
    plain.load_state_dict(sd, strict=True)
    x = torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        assert _rel(plain(x), net(x)) < 1e-6
    # The model itself is untouched: still constrained, same checkpoint.
    assert constraint_names(net.first) == constraints and len(constraints) >= 1
    after = net.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)


def test_exported_weight_keeps_the_constraints():
    net = _trained(("zero_sum", "unit_norm"))
    w = export_state_dict(net)["first.weight"].double()
    assert float(w.sum(dim=(-2, -1)).abs().max()) < 1e-6
    assert torch.allclose(w.flatten(1).norm(dim=1), torch.ones(8, dtype=torch.float64), atol=1e-6)
    anti = export_state_dict(_trained(("antisymmetric",)))["first.weight"]
    assert torch.equal(anti, -torch.flip(anti, dims=(-2, -1)))
    assert not anti.requires_grad


def test_export_of_converted_model_with_weight_norm_loads_into_original_architecture():
    def build():
        return nn.Sequential(nn.Conv2d(2, 4, 11, padding=5), nn.ReLU(), nn.Conv2d(4, 3, 3))

    net = build()
    net[0] = parametrizations.weight_norm(net[0])
    convert(net, method="fft", min_kernel_size=1)
    x = torch.randn(2, 2, 20, 20)
    plain = build()
    plain.load_state_dict(export_state_dict(net), strict=True)
    with torch.no_grad():
        assert _rel(plain(x), net(x)) < 1e-5


def test_export_state_dict_errors():
    with pytest.raises(TypeError, match="model must be an nn.Module, got dict"):
        export_state_dict({"weight": torch.zeros(1)})
