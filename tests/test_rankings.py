"""Effect rankings (mean ablation at the head's pooled input), their file, and deletion curves."""

import json

import pytest
import torch

from mcviz import build_model, save_checkpoint
from mcviz.io.checkpoint import load_checkpoint
from mcviz.cli import main
from mcviz.explain import top_channels
from mcviz.explain.effect import HeadAblation, PooledSet, channel_effects, pooled_inputs
from mcviz.explain.rankings import (
    EffectRanking,
    available_rankings,
    linearised_head_scores,
    load_effect_ranking,
    own_in_top,
    ranking_path,
    save_effect_ranking,
)
from mcviz.evaluate.faithfulness import deletion_curves
from mcviz.core.groups import ChannelGroups

from .test_data import make_cub


def _model(head: str, soft: bool = False, classes: int = 5) -> torch.nn.Module:
    torch.manual_seed(0)
    sizes = [3, 2, 3, 4, 2][:classes]
    m = build_model("small", classes, ChannelGroups.from_sizes(sizes), head=head, soft=soft).eval()
    for bn in m.head.modules():  # statistics far from the defaults, so the BN algebra is exercised
        if isinstance(bn, torch.nn.BatchNorm1d):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.5, 0.5)
    return m


def _slow_effects(model, pooled: torch.Tensor, means: torch.Tensor, c: int) -> torch.Tensor:
    """One channel at a time through the head's own modules: the obvious definition."""
    head = model.head[2:]
    out = torch.zeros_like(pooled)
    with torch.no_grad():
        base = head(pooled)[:, c]
        for j in range(pooled.shape[1]):
            q = pooled.clone()
            q[:, j] = means[j]
            out[:, j] = base - head(q)[:, c]
    return out


@pytest.mark.parametrize("head,soft", [("official", False), ("gap", False), ("official", True)])
def test_effects_match_a_per_channel_loop(head, soft):
    model = _model(head, soft)
    x = torch.randn(9, 3, 64, 64)
    with torch.no_grad():
        f = model.features(x)
        pooled = pooled_inputs(model, f)
        # the pooled inputs are exactly what the head sees
        assert torch.allclose(model.head[2:](pooled), model.head_logits(f), atol=1e-5)
    ab = HeadAblation.of(model, pooled)
    if head == "official":
        assert torch.equal(ab.means, model.head[2].running_mean)
    else:
        assert torch.allclose(ab.means, pooled.mean(0))
    for c in range(model.num_classes):
        fast = ab.effects(pooled, c)
        assert torch.allclose(fast, _slow_effects(model, pooled, ab.means, c), atol=1e-5)
    labels = torch.tensor([0, 1, 1, 2, 3, 3, 3, 0, 1])
    per_class = channel_effects(ab, pooled, labels)
    assert per_class.shape == (5, pooled.shape[1])
    assert torch.allclose(per_class[3], ab.effects(pooled[labels == 3], 3).mean(0), atol=1e-6)
    assert torch.equal(per_class[4], torch.zeros(pooled.shape[1]))  # no images of class 4


def test_switching_off_sets_the_mean():
    model = _model("official")
    pooled = torch.rand(4, model.groups.num_channels)
    ab = HeadAblation.of(model)
    off = torch.zeros(pooled.shape[1], dtype=torch.bool)
    off[[1, 5]] = True
    q = pooled.clone()
    q[:, [1, 5]] = ab.means[[1, 5]]
    assert torch.allclose(ab.logits(pooled, off), model.head[2:](q), atol=1e-6)
    assert torch.allclose(ab.logits(pooled), model.head[2:](pooled), atol=1e-6)
    with pytest.raises(ValueError, match="GAP head keeps no channel means"):
        HeadAblation.of(_model("gap"))


def _known_model(classes: int = 6, xi: int = 3):
    """A GAP+linear head where class c reads only its own channels, each image of class c lights
    exactly those channels, and an extra class with no images wins when that evidence is gone:
    the channels that matter are known."""
    torch.manual_seed(1)
    model = build_model("small", classes + 1, ChannelGroups.uniform(classes + 1, xi), head="gap").eval()
    lin = model.head[-1]
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        lin.bias[classes] = 2.0  # "none of these": beats a class whose channels sit at their mean
        for c in range(classes):
            lin.weight[c, c * xi : (c + 1) * xi] = torch.tensor([3.0, 2.0, 1.0])
    labels = torch.arange(classes).repeat_interleave(10)
    pooled = 0.3 * torch.rand(len(labels), (classes + 1) * xi)
    for i, c in enumerate(labels.tolist()):
        pooled[i, c * xi : (c + 1) * xi] += 1.0
    return model, PooledSet(pooled, pooled.clone(), labels, "images")


def test_deletion_by_effect_beats_random_where_the_answer_is_known():
    model, ps = _known_model()
    ab = HeadAblation.of(model, ps.pooled)
    effects = channel_effects(ab, ps.pooled, ps.labels)
    assert own_in_top(effects[:6], model, k=3) == 3.0
    curves = deletion_curves(ab, ps, {"effect": effects, "wrong": -effects}, ks=(1, 3), random_draws=20)
    assert curves.accuracy == 1.0 and curves.classes == 6 and curves.images == 60
    eff, rnd, wrong = curves.drops["effect"], curves.drops["random"], curves.drops["wrong"]
    assert eff[3][0] == 1.0  # all three own channels off: every image is lost
    assert eff[3][0] >= 2 * rnd[3][0] and eff[3][1] > rnd[3][1]
    assert eff[1][1] > 0 and wrong[3][0] == 0.0
    md = curves.markdown()
    assert md[0].startswith("| ranking |") and len(md) == 2 + 3
    assert json.loads(json.dumps(curves.as_dict()))["drops"]["effect"]["3"][0] == 1.0


def test_own_in_top_counts_group_members():
    model = _model("official")
    member = torch.zeros(5, model.groups.num_channels)
    for c, chans in enumerate(model.groups.members):
        member[c, list(chans)] = 1.0
    assert own_in_top(member + 0.01 * torch.rand(member.shape), model, k=2) == 2.0
    assert own_in_top(-member, model, k=2) == 0.0
    assert own_in_top(member, model, k=14) == pytest.approx(14 / 5)  # every channel of every class


def _ckpt(path, classes, head="official"):
    torch.manual_seed(0)
    m = build_model("small", len(classes), xi=3, head=head).eval()
    save_checkpoint(
        path,
        m,
        {
            "backbone": "small",
            "class_names": classes,
            "dataset": "cub",
            "variant": "mc",
            "input": {"crop": 64, "resize": 73, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        },
    )
    return path


def test_rank_command_json_records_the_own_channels_of_its_ranking(tmp_path, capsys):
    """`mcviz rank --json` ends with the own-channel counts the lever script records: the saved
    effect ranking's, and the linearised head's."""
    root = make_cub(tmp_path / "CUB")
    ck = _ckpt(tmp_path / "m.safetensors", [f"Bird {i}" for i in range(3)])
    assert main(["rank", str(ck), "--dataset", "cub", "--root", str(root), "--workers", "0", "--json"]) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model, _ = load_checkpoint(ck)
    r = load_effect_ranking(ck)
    assert d["split"] == "test" and d["images"] == r.images
    assert d["own_in_top10"]["effect"] == pytest.approx(own_in_top(r.effects, model))
    assert d["own_in_top10"]["linearised-head"] == pytest.approx(own_in_top(linearised_head_scores(model), model))


def test_rank_command_writes_a_versioned_file_that_top_channels_reads(tmp_path, capsys):
    root = make_cub(tmp_path / "CUB")
    ck = _ckpt(tmp_path / "m.safetensors", [f"Bird {i}" for i in range(3)])
    assert load_effect_ranking(ck) is None
    assert main(["rank", str(ck), "--dataset", "cub", "--root", str(root), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "own channels in the top 10" in out and str(ranking_path(ck)) in out
    r = load_effect_ranking(ck)
    assert r is not None and r.effects.shape == (3, 9) and r.split == "test"
    d = json.loads(ranking_path(ck).read_text())
    assert d["format"] == "mcviz-ranking/1" and len(d["top"]) == 3 and d["meaning"]
    t = top_channels(ck, 1, k=4)
    assert t.by == "effect" and "effect" in t.source
    assert t.channels == r.effects[1].topk(4).indices.tolist()
    assert t.own() == [ch in (3, 4, 5) for ch in t.channels]
    model, meta = load_checkpoint(ck)
    assert available_rankings(model, meta, r) == ["effect", "linearised-head", "activation"]
    assert top_channels(ck, 1, k=4, by="linearised-head").by == "linearised-head"
    with pytest.raises(ValueError, match="no soft channel labels"):
        top_channels(ck, 1, by="soft-labels")
    # other weights: the file is stale and ignored
    _ckpt(ck, [f"Bird {i}" for i in range(3)], head="gap")
    assert load_effect_ranking(ck) is None
    assert top_channels(ck, 1, k=4).by == "linearised-head"
    with pytest.raises(ValueError, match="mcviz rank"):
        top_channels(ck, 1, by="effect")


def test_ranking_file_round_trip(tmp_path):
    eff = torch.randn(4, 7).to(torch.float16).float()
    r = EffectRanking("abc", "cub", "test", 12, eff, torch.rand(7))
    back = EffectRanking.from_json(r.to_json())
    assert torch.equal(back.effects, eff) and back.images == 12
    assert torch.allclose(back.means, r.means, atol=1e-3)
    (tmp_path / "x.ranking.json").write_text("{not json")
    (tmp_path / "x.safetensors").write_bytes(b"x")
    assert load_effect_ranking(tmp_path / "x.safetensors") is None
    assert save_effect_ranking(r, tmp_path / "x.safetensors") == tmp_path / "x.ranking.json"


def test_faithfulness_command(tmp_path, capsys):
    root = make_cub(tmp_path / "CUB")
    ck = _ckpt(tmp_path / "m.safetensors", [f"Bird {i}" for i in range(3)])
    rc = main(
        ["faithfulness", str(ck), "--dataset", "cub", "--root", str(root), "--workers", "0", "--k", "1", "3", "--json"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    js = json.loads(out.strip().splitlines()[-1])
    assert set(js["drops"]) == {"effect", "linearised-head", "activation", "own-channels", "random"}
    assert js["ks"] == [1, 3] and "| effect |" in out
    assert main(["faithfulness", str(ck), "--dataset", "cub", "--root", str(tmp_path / "nowhere")]) == 2
