import pytest
import torch

from mcviz import ChannelGroups, MCLoss
from mcviz.core.soft_labels import initial_soft_labels, l_inter, l_intra, regroup, shared_channels, update_soft_labels


def test_l_intra_on_hand_made_weights():
    w = torch.tensor(
        [
            [0.9, 0.1, 0.2],  # class 0
            [0.5, 0.3, 0.2],  # class 0
            [0.1, 0.8, 0.7],
        ]
    )  # class 2
    y = torch.tensor([0, 0, 2])
    # class 0: max over its samples = [0.9, 0.3, 0.2] -> 1.4 ; class 2: 1.6 ; mean over present classes
    assert l_intra(w, y, num_classes=3).item() == pytest.approx((1.4 + 1.6) / 2)


def test_l_inter_on_hand_made_weights():
    w = torch.tensor([[0.9, 0.1, 0.2], [0.5, 0.3, 0.2], [0.1, 0.8, 0.7]])
    assert l_inter(w).item() == pytest.approx(-(0.9 + 0.8 + 0.7))


def test_intra_plus_inter_prefers_one_class_per_channel():
    y = torch.tensor([0, 0, 1, 1])
    disjoint = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    shared = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    total = lambda w: l_intra(w, y, 2) + l_inter(w)
    assert total(disjoint) < total(shared)


def test_gradients_flow():
    w = torch.rand(6, 5, requires_grad=True)
    (l_intra(w, torch.tensor([0, 1, 1, 2, 0, 2]), 4) + l_inter(w)).backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_regroup_uneven_shared_and_deterministic():
    soft = torch.tensor(
        [[0.9, 0.8, 0.1, 0.6, 0.0, 0.0], [0.0, 0.7, 0.9, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4, 0.45, 0.2]]
    )  # nothing above threshold: its best channel
    g = regroup(soft, threshold=0.5, min_size=1, max_size=4)
    assert g.members == ((0, 1, 3), (1, 2), (4,))
    assert g.sizes == (3, 2, 1) and shared_channels(g) == 1  # channel 1 is shared
    assert regroup(soft.clone(), 0.5, 1, 4) == g
    ties = torch.full((2, 4), 0.7)
    assert regroup(ties, 0.5, 1, 2).members == ((0, 1), (0, 1))  # ties: lower index first
    capped = regroup(torch.ones(1, 6), 0.5, 1, 2)
    assert capped.sizes == (2,)


def test_initial_labels_reproduce_fixed_groups_and_the_loss_runs_on_regrouped():
    fixed = ChannelGroups.uniform(3, 2)
    soft = initial_soft_labels(fixed)
    assert regroup(soft, 0.5, 1, 4) == ChannelGroups.from_members(fixed.members, 6)
    update_soft_labels(soft, torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0, 0.0]]), torch.tensor([1]), momentum=0.5)
    assert soft[1].tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.0])
    assert soft[0].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # classes not in the batch unchanged
    g = regroup(soft, 0.5, 1, 4)
    assert g.members[1] == (1, 2, 3) and shared_channels(g) == 1
    x = torch.randn(2, 6, 4, 4, requires_grad=True)
    out = MCLoss(g).train()(x, torch.tensor([0, 1]))
    out.total.backward()
    assert torch.isfinite(x.grad).all()


def test_regroup_prefers_class_specific_channels_when_labels_are_high_everywhere():
    # Every label is above the threshold (SE weights high for all), with small class-specific
    # bumps: class i is a little higher on channels 2i and 2i+1. Ranking by the raw label
    # would give both classes channels 0-1 (or whatever is highest overall); specificity
    # gives each class its own.
    soft = torch.full((3, 6), 0.8)
    soft[:, 0] = 0.95  # high for everybody: not specific to anyone
    for i in range(3):
        soft[i, 2 * i : 2 * i + 2] += 0.04
    g = regroup(soft, threshold=0.5, min_size=1, max_size=2)
    assert g.members == ((0, 1), (2, 3), (4, 5))
    assert shared_channels(g) == 0


def test_family_sharing_on_hand_made_labels():
    from mcviz.core.soft_labels import family_sharing

    names = ["Herring Gull", "Laughing Gull", "Blue Jay", "Green Jay", "Cardinal", "Rock Wren"]
    s = torch.zeros(6, 12)
    s[0, [0, 1, 2]] = 1  # the gulls share channels 0-1
    s[1, [0, 1, 3]] = 1
    s[2, [4, 5, 6]] = 1  # the jays share nothing
    s[3, [7, 8, 9]] = 1
    s[4, [10, 0, 4]] = 1
    s[5, [11, 2, 7]] = 1
    r = family_sharing(s, names, k=3)
    assert r["family_pairs"] == 2 and r["pairs"] == 15
    assert r["family"] == pytest.approx((2 + 0) / 2)
    # all 15 pairs: gulls 2, Cardinal-Herring 1, Cardinal-Laughing 1, Cardinal-Blue Jay 1,
    # Wren-Herring 1, Wren-Green Jay 1
    assert r["random"] == pytest.approx(7 / 15)
    assert r["ratio"] == pytest.approx(1.0 / (7 / 15))
    with pytest.raises(ValueError, match="family"):
        family_sharing(s[:3], ["A Gull", "B Jay", "C Wren"], k=3)


def test_soft_label_rankings_skip_channels_every_class_weighs_alike():
    from mcviz import build_model
    from mcviz.explain import top_channels

    model = build_model("small", 3, xi=2, soft=True, head="gap").eval()
    labels = torch.full((3, 6), 0.1)
    labels[:, 5] = 0.95  # everybody's channel: high for every class
    labels[0, 0], labels[1, 2], labels[2, 4] = 0.9, 0.8, 0.7  # each class's own
    model.soft_labels.copy_(labels)
    for c, own in enumerate((0, 2, 4)):
        r = top_channels(model, c, k=2)
        assert r.channels[0] == own and 5 not in r.channels[:1]
        assert "specificity" in r.source
