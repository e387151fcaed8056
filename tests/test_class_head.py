"""The class-connected head: a class's score is its own channels' evidence plus its bias, and
every explanation built on it (effects, linearised weights, contribution maps) is exact."""

from __future__ import annotations

import pytest
import torch

from mcviz.core.class_head import CLASS_HEADS, ClassConnected, membership
from mcviz.core.groups import ChannelGroups
from mcviz.core.models import build_model
from mcviz.explain.effect import HeadAblation, channel_effects, pooled_inputs
from mcviz.explain.methods.contribution import Contribution
from mcviz.explain.rankings import linearised_head_scores
from mcviz.io.checkpoint import load_checkpoint, save_checkpoint

GROUPS = {"uniform": ChannelGroups.uniform(4, 3), "uneven": ChannelGroups.split(14, 4)}


def _model(kind: str, groups: ChannelGroups, soft: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    n = groups.num_channels
    m = build_model("small", groups.num_classes, groups, mc_layer=True, head=kind, soft=soft)
    bn = m.head_parts().bn1
    with torch.no_grad():  # statistics and weights far from their identity start
        bn.running_mean.uniform_(0.0, 1.0)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        m.head[-1].weight.uniform_(-2.0, 2.0)
        m.head[-1].bias.uniform_(-1.0, 1.0)
    return m.eval(), n


def test_hand_made_scores_are_bias_plus_own_channels():
    groups = ChannelGroups.from_members([[0, 1], [2, 3, 4]], 5)
    cc = ClassConnected(membership(groups))
    with torch.no_grad():
        cc.weight.copy_(torch.tensor([1.0, 2.0, 3.0, -1.0, 0.5]))
        cc.bias.copy_(torch.tensor([0.25, -0.5]))
    x = torch.tensor([[1.0, 1.0, 2.0, 4.0, 2.0]])
    # class 0: 0.25 + 1*1 + 2*1; class 1: -0.5 + 3*2 - 1*4 + 0.5*2
    assert cc(x).tolist() == [[3.25, 2.5]]
    ev = cc.evidence(x)[0]
    assert ev[0].tolist() == [1.0, 2.0, 0.0, 0.0, 0.0] and ev[1].tolist() == [0.0, 0.0, 6.0, -4.0, 1.0]


@pytest.mark.parametrize("kind", list(CLASS_HEADS))
@pytest.mark.parametrize("grouping", list(GROUPS))
def test_channels_outside_the_group_never_move_the_class_score(kind, grouping):
    groups = GROUPS[grouping]
    model, n = _model(kind, groups)
    feats = torch.rand(3, n, 5, 5)
    base = model.logits_from_features(feats)
    for c in range(groups.num_classes):
        others = [j for j in range(n) if j not in groups.members[c]]
        changed = feats.clone()
        changed[:, others] = torch.rand(3, len(others), 5, 5) * 10
        assert torch.allclose(model.logits_from_features(changed)[:, c], base[:, c], atol=1e-5)
        mine = feats.clone()
        mine[:, list(groups.members[c])] += 3.0
        assert not torch.allclose(model.logits_from_features(mine)[:, c], base[:, c], atol=1e-3)


@pytest.mark.parametrize("kind", list(CLASS_HEADS))
def test_effects_and_linearised_weights_are_exact(kind):
    groups = GROUPS["uneven"]
    model, n = _model(kind, groups)
    feats = torch.rand(6, n, 4, 4)
    pooled = pooled_inputs(model, feats)
    abl = HeadAblation.of(model)
    for c in range(groups.num_classes):
        fast = abl.effects(pooled, c)
        for j in range(n):  # the slow way: switch the channel off and run the head again
            off = torch.zeros(n, dtype=torch.bool)
            off[j] = True
            slow = abl.logits(pooled)[:, c] - abl.logits(pooled, off)[:, c]
            assert torch.allclose(fast[:, j], slow, atol=1e-5)
        outside = [j for j in range(n) if j not in groups.members[c]]
        assert fast[:, outside].abs().max() == 0
    w = linearised_head_scores(model)
    assert torch.allclose(pooled @ w.T + abl.logits(torch.zeros(1, n)), abl.logits(pooled), atol=1e-4)
    eff = channel_effects(abl, pooled, torch.tensor([0, 1, 2, 3, 0, 1]))
    assert eff.shape == (4, n)


@pytest.mark.parametrize("kind", list(CLASS_HEADS))
def test_contribution_maps_plus_bias_are_the_score(kind):
    groups = GROUPS["uniform"]
    model, n = _model(kind, groups)
    x = torch.rand(1, 3, 32, 32)
    feats = model.features(x)
    logits = model.logits_from_features(feats)[0]
    for c in range(groups.num_classes):
        chans = list(groups.members[c])
        maps = Contribution()(model, x, chans, classes=[c] * len(chans), features=feats)
        total = float(maps.sum()) + float(model.head[-1].bias[c].detach())
        assert total == pytest.approx(float(logits[c]), abs=1e-4)


def test_soft_labels_connect_every_class_a_channel_counts_for():
    groups = GROUPS["uniform"]
    model, n = _model("class-connected-avg", groups, soft=True)
    with torch.no_grad():
        model.soft_labels[0, 5] = 0.5  # channel 5 (class 1's) now also counts half for class 0
    # the SE gate reads every channel, so the connection is checked on the gated features
    feats = torch.rand(2, n, 4, 4)
    base = model.classify(feats)
    changed = feats.clone()
    changed[:, 5] += 2.0
    after = model.classify(changed)
    assert not torch.allclose(after[:, 0], base[:, 0])  # class 0 now hears channel 5
    assert torch.allclose(after[:, 2], base[:, 2]) and torch.allclose(after[:, 3], base[:, 3])


def test_checkpoint_round_trip_keeps_the_head(tmp_path):
    model, n = _model("class-connected-max", GROUPS["uneven"])
    path = tmp_path / "cc.safetensors"
    save_checkpoint(path, model, {"backbone": "small", "class_names": list("abcd")})
    loaded, meta = load_checkpoint(path)
    assert meta.head == "class-connected-max" and loaded.class_connected
    feats = torch.rand(2, n, 4, 4)
    assert torch.allclose(loaded.logits_from_features(feats), model.logits_from_features(feats), atol=1e-5)


@pytest.mark.parametrize("grouping", list(GROUPS))
def test_evidence_adds_up_to_the_score(grouping):
    from mcviz.explain.evidence import class_evidence

    groups = GROUPS[grouping]
    model, n = _model("class-connected-max", groups)
    feats = torch.rand(1, n, 4, 4)
    pooled = pooled_inputs(model, feats)[0]
    logits = model.logits_from_features(feats)[0]
    for c in range(groups.num_classes):
        ev = class_evidence(model, pooled, c)
        assert sorted(ev.channels) == sorted(groups.members[c])
        assert ev.values == sorted(ev.values, reverse=True)
        assert ev.total == pytest.approx(float(logits[c]), abs=1e-4) == ev.score
    official = build_model("small", groups.num_classes, groups, mc_layer=True).eval()
    with pytest.raises(ValueError, match="no exact"):
        class_evidence(official, pooled, 0)


def test_evidence_ranking_from_the_effect_file_is_the_mean_evidence():
    from mcviz.explain.evidence import class_evidence
    from mcviz.explain.rankings import EffectRanking, available_rankings, evidence_scores
    from mcviz.io.checkpoint import as_meta

    groups = GROUPS["uniform"]
    model, n = _model("class-connected-avg", groups)
    pooled = pooled_inputs(model, torch.rand(8, n, 4, 4))
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    abl = HeadAblation.of(model)
    effect = EffectRanking("sha", "cub", "test", 8, channel_effects(abl, pooled, labels), abl.means)
    scores = evidence_scores(model, effect)
    for c in range(groups.num_classes):
        slow = torch.zeros(n)
        for p in pooled[labels == c]:
            ev = class_evidence(model, p, c)
            slow[ev.channels] += torch.tensor(ev.values) / int((labels == c).sum())
        assert torch.allclose(scores[c], slow, atol=1e-4)
    meta = as_meta({"backbone": "small"}, model)
    assert available_rankings(model, meta, effect)[:2] == ["evidence", "effect"]


def test_a_deeper_mc_layer_round_trips(tmp_path):
    groups = GROUPS["uniform"]
    torch.manual_seed(0)
    m = build_model("small", 4, groups, head="class-connected-avg", mc_hidden=16).eval()
    assert [type(l).__name__ for l in m.mc_layer][:3] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert m.mc_layer[0].out_channels == 16 and m.mc_layer[3].out_channels == groups.num_channels
    path = tmp_path / "deep.safetensors"
    save_checkpoint(path, m, {"backbone": "small"})
    loaded, meta = load_checkpoint(path)
    assert meta.raw["mc_hidden"] == 16
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), m(x), atol=1e-5)
