"""fold_batchnorm: the folded copy computes what the network computes, on every backbone."""

import pytest
import torch
from torch import nn

from mcviz import build_model
from mcviz.core.folding import fold_batchnorm


def _random_statistics(model: nn.Module) -> nn.Module:
    # fresh BatchNorms are the identity in eval mode: give them statistics a folding bug would show
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


@pytest.mark.parametrize("backbone,size", [("lite0", 96), ("small", 64), ("resnet18", 64)])
@torch.no_grad()
def test_folded_network_matches(backbone, size):
    model = _random_statistics(build_model(backbone, 5, xi=2))
    folded = fold_batchnorm(model)
    assert folded is not model
    n_bn = lambda m: sum(isinstance(x, nn.BatchNorm2d) for x in m.modules())  # noqa: E731
    assert n_bn(folded) < n_bn(model) - 3  # the body's pairs are gone; the head's BatchNorm1d stays
    x = torch.randn(3, 3, size, size)
    torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(folded.features(x), model.features(x), atol=1e-4, rtol=1e-4)
    # a cached trunk's output in, the rest of the network on it: the same names, the same numbers
    layer = [n for n, _ in model.stages()][1]
    z = model.split_at(layer)[0](x)
    torch.testing.assert_close(folded.features(z, after=layer), model.features(z, after=layer), atol=1e-4, rtol=1e-4)


class _NotAPair(nn.Module):
    """A conv registered before a BatchNorm that normalises something else: folding would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.conv(x) + self.bn(x)


def test_a_wrong_fold_is_refused():
    model = _random_statistics(_NotAPair())
    assert fold_batchnorm(model) is model


def test_nothing_to_fold_returns_the_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
    assert fold_batchnorm(model) is model


@pytest.mark.parametrize("backbone,size", [("lite0", 96), ("resnet18", 64)])
@torch.no_grad()
def test_the_inference_copy_runs_its_relus_in_place_and_leaves_the_model_alone(backbone, size):
    from mcviz.core.folding import for_inference

    model = _random_statistics(build_model(backbone, 5, xi=2))
    relus = lambda m: [x for x in m.modules() if isinstance(x, (nn.ReLU, nn.ReLU6))]  # noqa: E731
    before = [r.inplace for r in relus(model)]
    fast = for_inference(model)
    assert relus(fast) and all(r.inplace for r in relus(fast))
    assert [r.inplace for r in relus(model)] == before  # the original (Grad-CAM's) is not touched
    x = torch.randn(2, 3, size, size)
    torch.testing.assert_close(fast.features(x), model.features(x), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast(x), model(x), atol=1e-4, rtol=1e-4)
