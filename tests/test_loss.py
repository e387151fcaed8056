import math

import pytest
import torch

from mcviz import ChannelGroups, MCLoss, discriminality_logits, diversity_scores, random_cwa_mask
from mcviz.core.loss import VARIANTS

from .reference import slow_discriminality, slow_diversity


def one_hot_channels(xi: int, h: int = 4, w: int = 4, peak: float = 60.0, same: bool = False):
    x = torch.zeros(1, xi, h, w)
    for j in range(xi):
        k = 0 if same else j
        x[0, j, k // w, k % w] = peak
    return x


def test_h_is_one_for_identical_channels():
    g = ChannelGroups.uniform(1, 3)
    x = torch.randn(1, 1, 5, 6).repeat(1, 3, 1, 1)
    assert diversity_scores(x, g).item() == pytest.approx(1.0, abs=1e-6)
    assert diversity_scores(one_hot_channels(3, same=True), g).item() == pytest.approx(1.0, abs=1e-6)


def test_h_is_xi_for_one_hot_channels_at_distinct_places():
    for xi in (2, 3, 5):
        g = ChannelGroups.uniform(1, xi)
        assert diversity_scores(one_hot_channels(xi), g).item() == pytest.approx(xi, abs=1e-4)


def test_h_bounds_on_random_uneven_groups():
    torch.manual_seed(0)
    g = ChannelGroups.from_sizes([1, 2, 3, 5, 4])
    x = torch.randn(6, g.num_channels, 7, 3) * 5
    h = diversity_scores(x, g)
    sizes = torch.tensor(g.sizes, dtype=h.dtype)
    assert h.shape == (6, 5)
    assert (h >= 1 - 1e-6).all() and (h <= sizes + 1e-6).all()
    assert torch.allclose(h[:, 0], torch.ones(6))  # a 1-channel group has h = 1 exactly


@pytest.mark.parametrize(
    "groups",
    [
        ChannelGroups.uniform(4, 3),
        ChannelGroups.from_sizes([2, 3, 1, 4]),
        ChannelGroups.from_sizes([2, 3] * 6),  # 12 runs: the gather path
        ChannelGroups.from_members([[0, 5], [5, 1, 2], [3], [4, 0]], 6),
    ],
)
def test_fast_terms_match_slow_loops(groups):
    torch.manual_seed(1)
    x = torch.randn(3, groups.num_channels, 5, 4, dtype=torch.float64)
    assert torch.allclose(discriminality_logits(x, groups), slow_discriminality(x, groups))
    assert torch.allclose(discriminality_logits(x, groups, pool="avg"), slow_discriminality(x, groups, pool="avg"))
    assert torch.allclose(diversity_scores(x, groups).double(), slow_diversity(x, groups), atol=1e-6)
    keep = random_cwa_mask(groups, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(discriminality_logits(x, groups, keep), slow_discriminality(x, groups, keep))
    keep_b = random_cwa_mask(groups, batch=3, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(discriminality_logits(x, groups, keep_b), slow_discriminality(x, groups, keep_b))
    assert torch.allclose(
        discriminality_logits(x, groups, keep_b, pool="avg"), slow_discriminality(x, groups, keep_b, pool="avg")
    )


def test_dropped_channels_are_excluded_not_zeroed():
    g = ChannelGroups.uniform(1, 2)
    x = torch.full((1, 2, 2, 2), -3.0)
    x[0, 1] = -1.0
    keep = torch.tensor([True, False])
    # zeroing would give max(-3, 0) = 0; excluding gives -3
    assert discriminality_logits(x, g, keep).item() == pytest.approx(-3.0)
    assert discriminality_logits(x, g).item() == pytest.approx(-1.0)


def test_cwa_mask_keeps_ceil_half_per_group():
    g = ChannelGroups.from_sizes([1, 2, 3, 4, 5, 10, 11])
    for seed in range(5):
        m = random_cwa_mask(g, generator=torch.Generator().manual_seed(seed))
        assert m.shape == (g.num_channels,) and m.dtype == torch.bool
        for i, s in enumerate(g.sizes):
            assert int(m[g.channels(i)].sum()) == math.ceil(s / 2)
    mb = random_cwa_mask(g, batch=8, generator=torch.Generator().manual_seed(0))
    assert mb.shape == (8, g.num_channels)
    for i, s in enumerate(g.sizes):
        assert (mb[:, g.channels(i)].sum(1) == math.ceil(s / 2)).all()
    assert not (mb == mb[0]).all()  # per-sample masks differ
    a = random_cwa_mask(g, generator=torch.Generator().manual_seed(7))
    b = random_cwa_mask(g, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_gradcheck_float64():
    g = ChannelGroups.from_sizes([2, 3, 1])
    torch.manual_seed(0)
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    keep = torch.tensor([True, False, True, True, False, True])
    assert torch.autograd.gradcheck(lambda t: discriminality_logits(t, g, keep), (x,))
    assert torch.autograd.gradcheck(lambda t: discriminality_logits(t, g, keep, pool="avg"), (x,))
    assert torch.autograd.gradcheck(lambda t: diversity_scores(t, g), (x,))
    assert diversity_scores(x, g).dtype == torch.float64


def test_half_precision_does_not_overflow():
    g = ChannelGroups.uniform(3, 3)
    x = (torch.randn(2, 9, 14, 14) * 2e4).clamp(-6e4, 6e4).to(torch.float16)
    assert torch.isfinite(x).all()
    h = diversity_scores(x, g)
    assert torch.isfinite(h).all() and (h >= 1 - 1e-4).all() and (h <= 3 + 1e-4).all()
    assert torch.isfinite(discriminality_logits(x.to(torch.bfloat16), g).float()).all()


def test_any_spatial_size():
    g = ChannelGroups.uniform(2, 2)
    for hw in [(1, 1), (7, 7), (14, 14), (3, 11)]:
        assert diversity_scores(torch.randn(1, 4, *hw), g).shape == (1, 2)


def test_clear_errors():
    g = ChannelGroups.uniform(4, 3)
    with pytest.raises(ValueError, match="feature map has 10 channels"):
        diversity_scores(torch.randn(1, 10, 3, 3), g)
    with pytest.raises(ValueError, match=r"\(B, N, H, W\)"):
        discriminality_logits(torch.randn(12, 3, 3), g)
    with pytest.raises(ValueError, match="keep must have shape"):
        discriminality_logits(torch.randn(2, 12, 3, 3), g, torch.ones(11, dtype=torch.bool))
    with pytest.raises(ValueError, match="drops every channel"):
        discriminality_logits(torch.randn(2, 12, 3, 3), g, torch.zeros(12, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown MC-Loss variant"):
        MCLoss(g, variant="nope")


def _data(seed=0):
    g = ChannelGroups.from_sizes([3, 2, 4])
    torch.manual_seed(seed)
    x = torch.randn(4, 9, 5, 5, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    return g, x, y


def test_mcloss_full_matches_paper_equations():
    g, x, y = _data()
    loss = MCLoss(g, lam=2.5, variant="full").eval()  # eval: no CWA
    out = loss(x, y)
    dis = torch.nn.functional.cross_entropy(slow_discriminality(x, g), y)
    div = slow_diversity(x, g).mean()
    assert out.total.item() == pytest.approx((dis - 2.5 * div).item(), abs=1e-5)
    assert out.dis.item() == pytest.approx(dis.item(), abs=1e-6)
    assert out.div.item() == pytest.approx(div.item(), abs=1e-5)


def test_cwa_in_training_only():
    g, x, y = _data()
    loss = MCLoss(g, variant="full")
    keep = random_cwa_mask(g, generator=torch.Generator().manual_seed(0))
    train_out = loss.train()(x, y, keep=keep)
    expected = torch.nn.functional.cross_entropy(slow_discriminality(x, g, keep), y)
    assert train_out.dis.item() == pytest.approx(expected.item(), abs=1e-6)
    eval_out = loss.eval()(x, y, keep=keep)  # a mask given in eval mode is ignored
    assert eval_out.dis.item() == pytest.approx(torch.nn.functional.cross_entropy(slow_discriminality(x, g), y).item())
    # the diversity branch never sees the mask
    assert train_out.div.item() == pytest.approx(eval_out.div.item())
    # no_cwa: training mode, no mask
    nc = MCLoss(g, variant="no_cwa").train()(x, y, keep=keep)
    assert nc.dis.item() == pytest.approx(eval_out.dis.item())


def test_variants():
    g, x, y = _data()
    ref_dis = torch.nn.functional.cross_entropy(slow_discriminality(x, g), y).item()
    h = slow_diversity(x, g)
    lam = 3.0
    outs = {v: MCLoss(g, lam=lam, variant=v).eval()(x, y) for v in VARIANTS}
    assert outs["no_div"].total.item() == pytest.approx(ref_dis)
    assert outs["no_dis"].total.item() == pytest.approx(-lam * h.mean().item(), abs=1e-5)
    target_h = h[torch.arange(4), y].mean().item()
    assert outs["div_target"].div.item() == pytest.approx(target_h, abs=1e-5)
    assert outs["div_target"].total.item() == pytest.approx(ref_dis - lam * target_h, abs=1e-5)
    ccap_dis = torch.nn.functional.cross_entropy(slow_discriminality(x, g, pool="avg"), y).item()
    assert outs["ccap"].dis.item() == pytest.approx(ccap_dis)


def test_variant_gradients_flow_where_they_should():
    g, x, y = _data()
    for v in VARIANTS:
        xx = x.clone().requires_grad_(True)
        MCLoss(g, variant=v).train()(xx, y).total.backward()
        assert xx.grad is not None and torch.isfinite(xx.grad).all() and xx.grad.abs().sum() > 0, v
    # no_div: the gradient is exactly that of L_dis
    keep = random_cwa_mask(g, generator=torch.Generator().manual_seed(1))
    a = x.clone().requires_grad_(True)
    MCLoss(g, variant="no_div").train()(a, y, keep=keep).total.backward()
    b = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(discriminality_logits(b, g, keep), y).backward()
    assert torch.allclose(a.grad, b.grad)


def test_temperature_changes_h_only():
    g = ChannelGroups.uniform(2, 3)
    x = torch.randn(2, 6, 4, 4)
    assert not torch.allclose(diversity_scores(x, g, temperature=4.0), diversity_scores(x, g))
    assert torch.allclose(diversity_scores(x, g, temperature=2.0), diversity_scores(x / 2, g))


def test_normalize_makes_h_scale_free():
    g = ChannelGroups.uniform(2, 3)
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 5)
    a = diversity_scores(x, g, normalize=True)
    assert torch.allclose(a, diversity_scores(x * 50 + 3, g, normalize=True), atol=1e-4)
    assert not torch.allclose(diversity_scores(x, g), diversity_scores(x * 50, g))
    assert (a >= 1 - 1e-5).all() and (a <= 3 + 1e-5).all()
    out = MCLoss(g, normalize=True).eval()(x.double(), torch.tensor([0, 1]))
    assert out.div.item() == pytest.approx(a.mean().item(), abs=1e-4)


@pytest.mark.parametrize("region", ["class", "object"])
@pytest.mark.parametrize(
    "groups",
    [
        ChannelGroups.uniform(3, 3),
        ChannelGroups.from_sizes([2, 3, 1, 4]),
        ChannelGroups.from_members([[0, 5], [5, 1, 2], [3], [4, 0]], 6),
    ],
)
def test_region_h_matches_slow_loop_and_keeps_bounds(groups, region):
    torch.manual_seed(2)
    x = torch.randn(4, groups.num_channels, 5, 4, dtype=torch.float64) * 3
    h = diversity_scores(x, groups, region=region)
    assert torch.allclose(h.double(), slow_diversity(x, groups, region=region), atol=1e-6)
    sizes = torch.tensor(groups.sizes, dtype=h.dtype)
    assert (h >= 1 - 1e-6).all() and (h <= sizes + 1e-6).all()


def test_object_region_ignores_peaks_on_the_background():
    # Ten classes fire over the left half of a 4x4 map (the "object"). Class 0's channels 0
    # and 1 peak at distinct places inside it; channel 2 puts its peak on the right half,
    # the background. The paper's h rewards that escape; h inside the object does not.
    g = ChannelGroups.uniform(10, 3)
    x = torch.zeros(1, 30, 4, 4)
    x[0, :, :, :2] = 1.0
    x[0, 0, 0, 0] = x[0, 1, 3, 1] = 8.0
    x[0, 2, 1, 3] = 8.0
    everywhere = diversity_scores(x, g)[0, 0].item()
    inside = diversity_scores(x, g, region="object")[0, 0].item()
    assert everywhere > 2.9  # three distinct peaks: h close to 3
    # inside the 8 cells: two peaks of softmax mass e^8 / (e^8 + 7e), and channel 2 is flat
    # there (1/8 per cell), which wins the max on the 6 other cells
    peak = math.exp(8) / (math.exp(8) + 7 * math.e)
    assert inside == pytest.approx(2 * peak + 6 / 8, abs=1e-4)
    # the class's own region is moved by its escaping channel (8/3 above the mean): no protection
    assert diversity_scores(x, g, region="class")[0, 0].item() > 2.9
    # h inside reaches xi once the third channel peaks inside the object too
    y = x.clone()
    y[0, 2, 1, 3] = 0.0
    y[0, 2, 2, 0] = 8.0
    assert diversity_scores(y, g, region="object")[0, 0].item() > inside + 0.2


def test_region_option_reaches_the_loss():
    g = ChannelGroups.uniform(2, 3)
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    out = MCLoss(g, region="object").eval()(x, torch.tensor([0, 1]))
    assert out.div.item() == pytest.approx(diversity_scores(x, g, region="object").mean().item())
    out.total.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="region"):
        MCLoss(g, region="box")
    with pytest.raises(ValueError, match="region"):
        diversity_scores(x, g, region="box")


@pytest.mark.parametrize(
    "groups",
    [
        ChannelGroups.uniform(3, 3),
        ChannelGroups.from_sizes([2, 3, 1, 4]),
        ChannelGroups.from_members([[0, 5], [5, 1, 2], [3], [4, 0]], 6),
    ],
)
def test_given_region_mask_matches_slow_loop_and_keeps_bounds(groups):
    torch.manual_seed(3)
    x = torch.randn(3, groups.num_channels, 4, 5, dtype=torch.float64) * 3
    mask = torch.rand(3, 4, 5) < 0.4
    mask[2] = False
    mask[2, 1, 1] = True  # a one-cell region: every channel's softmax is 1 there, h = 1
    h = diversity_scores(x, groups, mask=mask)
    assert torch.allclose(h.double(), slow_diversity(x, groups, mask=mask), atol=1e-6)
    assert torch.allclose(h[2], torch.ones_like(h[2]))
    sizes = torch.tensor(groups.sizes, dtype=h.dtype)
    assert (h >= 1 - 1e-6).all() and (h <= sizes + 1e-6).all()
    # the full mask is the paper's h
    assert torch.allclose(
        diversity_scores(x, groups, mask=torch.ones(3, 4, 5, dtype=torch.bool)), diversity_scores(x, groups)
    )


def test_given_mask_stops_the_escape_the_class_region_allows():
    # the map of test_object_region_ignores_peaks_on_the_background, with the object's half
    # given from outside (as the frozen anchor network gives it in training)
    g = ChannelGroups.uniform(10, 3)
    x = torch.zeros(1, 30, 4, 4)
    x[0, 0, 0, 0] = x[0, 1, 3, 1] = x[0, 2, 1, 3] = 8.0
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :, :2] = True
    peak = math.exp(8) / (math.exp(8) + 7)
    assert diversity_scores(x, g, mask=mask)[0, 0].item() == pytest.approx(2 * peak + 6 / 8, abs=1e-4)
    assert diversity_scores(x, g)[0, 0].item() > 2.9


def test_region_mask_reaches_the_loss_and_is_checked():
    g = ChannelGroups.uniform(2, 3)
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[:, 1:3, 1:3] = True
    out = MCLoss(g).eval()(x, torch.tensor([0, 1]), region_mask=mask)
    assert out.div.item() == pytest.approx(diversity_scores(x, g, mask=mask).mean().item())
    out.total.backward()
    # L_div's gradient stays inside the region; outside only L_dis's max-pool winners get one
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="region='all'"):
        diversity_scores(x, g, region="object", mask=mask)
    with pytest.raises(ValueError, match="shape"):
        diversity_scores(x, g, mask=mask[:1])
    with pytest.raises(ValueError, match="shape"):
        diversity_scores(x, g, mask=mask.float())
    empty = mask.clone()
    empty[1] = False
    with pytest.raises(ValueError, match="empty"):
        diversity_scores(x, g, mask=empty)
