import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mcviz import load_checkpoint
from mcviz.cli import main
from mcviz.data import build
from mcviz.data.transforms import EvalTransform, resize_for
from mcviz.train.config import TrainConfig

from .conftest import REPO, make_folder_dataset

BASE = [
    "--dataset",
    "folder",
    "--backbone",
    "small",
    "--image-size",
    "32",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--lr",
    "0.05",
]


def rows(run: Path):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_then_eval(tiny_folder, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(
        ["train", *BASE, "--root", str(tiny_folder), "--out", str(run), "--epochs", "2", "--variant", "mc", "--xi", "2"]
    )
    assert rc == 0
    r = rows(run)
    assert [x["epoch"] for x in r] == [1, 2]
    for k in ("top1", "top5", "top1_head", "top1_mc", "mean_h", "train_dis", "train_div", "train_ce"):
        assert k in r[-1]
    assert 1.0 <= r[-1]["mean_h"] <= 2.0
    model, meta = load_checkpoint(run / "last.safetensors")
    assert meta.variant == "mc" and meta.class_names == ["Class 0", "Class 1", "Class 2"]
    assert meta.input["crop"] == 32 and meta.metrics.epoch == 2 and meta.metrics.final_epoch
    assert meta.command.startswith("mcviz train --dataset folder")
    assert model.groups.sizes == (2, 2, 2)
    capsys.readouterr()
    rc = main(
        [
            "eval",
            str(run / "last.safetensors"),
            "--dataset",
            "folder",
            "--root",
            str(tiny_folder),
            "--workers",
            "0",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "top-1" in out
    res = json.loads(out.strip().splitlines()[-1])
    assert res["n"] == 9 and set(res["per_class"]) == {"Class 0", "Class 1", "Class 2"}
    assert res["top1"] == pytest.approx(r[-1]["top1"], abs=1e-3) and res["crop"] == 32
    # --crop: the same network on larger test crops, scored as by hand
    assert (
        main(
            [
                "eval",
                str(run / "last.safetensors"),
                "--dataset",
                "folder",
                "--root",
                str(tiny_folder),
                "--workers",
                "0",
                "--json",
                "--crop",
                "48",
            ]
        )
        == 0
    )
    res48 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    tf = EvalTransform(48, resize_for(48), meta.input["mean"], meta.input["std"])
    ds = build("folder", tiny_folder, "test", tf)
    with torch.no_grad():
        hits = sum(int(model.eval()(ds[i][0][None]).argmax(1)) == ds[i][1] for i in range(len(ds)))
    assert res48["crop"] == 48 and res48["top1"] == pytest.approx(100 * hits / len(ds), abs=1e-3)
    # a second train into the same folder is refused rather than overwritten
    assert main(["train", *BASE, "--root", str(tiny_folder), "--out", str(run), "--epochs", "1"]) == 2


@pytest.mark.parametrize("variant", ["ce", "mc-no-div", "mc-no-dis", "mc-no-cwa", "mc-v2", "mc-ccap", "mc-soft"])
def test_every_variant_trains(variant, tiny_folder, tmp_path):
    run = tmp_path / variant
    assert (
        main(
            [
                "train",
                *BASE,
                "--root",
                str(tiny_folder),
                "--out",
                str(run),
                "--epochs",
                "1",
                "--variant",
                variant,
                "--head",
                "gap",
                "--predict",
                "mc",
                "--limit",
                "9",
            ]
        )
        == 0
    )
    assert rows(run)[0]["n"] == 9
    assert load_checkpoint(run / "last.safetensors")[1].variant == variant


def _cli(*args):
    return [sys.executable, "-m", "mcviz", "train", *args]


def _env():
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    data = make_folder_dataset(tmp_path / "d", classes=3, per_class=24, size=40)
    args = [*BASE, "--root", str(data), "--epochs", "4", "--image-size", "40", "--xi", "2"]
    full = tmp_path / "full"
    subprocess.run(_cli(*args, "--out", str(full)), check=True, env=_env(), capture_output=True, timeout=600)

    run = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(*args, "--out", str(run)),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        if (run / "metrics.jsonl").exists() and len(rows(run)) >= 1 and (run / "state.pt").exists():
            break
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(rows(run))
    assert 1 <= done < 4, "the kill should land before the run finished"
    res = subprocess.run(
        [sys.executable, "-m", "mcviz", "train", "--resume", str(run)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert [r["epoch"] for r in rows(run)] == [1, 2, 3, 4]
    a, b = load_file(full / "last.safetensors"), load_file(run / "last.safetensors")
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    # extend the finished run to 5 epochs
    res = subprocess.run(
        [sys.executable, "-m", "mcviz", "train", "--resume", str(run), "--epochs", "5"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert [r["epoch"] for r in rows(run)] == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_distributed_two_processes_gloo(tmp_path):
    data = make_folder_dataset(tmp_path / "d", classes=3, per_class=8, size=32)
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        "-m",
        "mcviz",
        "train",
        *BASE,
        "--root",
        str(data),
        "--out",
        str(run),
        "--epochs",
        "2",
        "--device",
        "cpu",
    ]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    r = rows(run)
    assert [x["epoch"] for x in r] == [1, 2]
    # 24 training images over 2 ranks at batch 8: 12 per rank, one full batch each
    assert all(x["world_size"] == 2 and x["steps"] == 1 for x in r)
    state = torch.load(run / "state.pt", weights_only=True)
    assert len(state["rng"]) == 2  # both ranks reported their state
    model, meta = load_checkpoint(run / "last.safetensors")
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)


@pytest.mark.slow
def test_one_epoch_on_real_cub_with_limit(cub_root, tmp_path):
    run = tmp_path / "cub"
    rc = main(
        [
            "train",
            "--dataset",
            "cub",
            "--root",
            str(cub_root),
            "--out",
            str(run),
            "--epochs",
            "1",
            "--limit",
            "48",
            "--image-size",
            "64",
            "--batch-size",
            "16",
            "--workers",
            "0",
        ]
    )
    assert rc == 0
    r = rows(run)[0]
    assert r["n"] == 48 and 1.0 <= r["mean_h"] <= 3.0
    assert len(load_checkpoint(run / "last.safetensors")[1].class_names) == 200


def test_soft_label_training_stores_labels_and_groups(tiny_folder, tmp_path):
    from mcviz.explain import top_channels

    run = tmp_path / "soft"
    assert (
        main(
            [
                "train",
                *BASE,
                "--root",
                str(tiny_folder),
                "--out",
                str(run),
                "--epochs",
                "2",
                "--variant",
                "mc-soft",
                "--xi",
                "2",
                "--head",
                "gap",
            ]
        )
        == 0
    )
    r = rows(run)[-1]
    assert "shared_channels" in r and "train_intra" in r and "train_inter" in r
    model, meta = load_checkpoint(run / "last.safetensors")
    assert meta.soft and model.soft_labels.shape == (3, 6)
    assert not torch.equal(
        model.soft_labels, torch.tensor([[1.0, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]])
    )
    t = top_channels(run / "last.safetensors", 1, k=4)
    specific = model.soft_labels - model.soft_labels.mean(dim=0, keepdim=True)
    assert "soft" in t.source and t.channels == specific[1].topk(4).indices.tolist()


def test_soft_groups_never_grow_past_twice_the_initial_size(tiny_folder, tmp_path, monkeypatch):
    """Regression: the cap was once taken from the current (regrouped) groups, so groups at the cap
    doubled it at the next regrouping."""
    from mcviz import ChannelGroups
    from mcviz.train import loop

    caps = []

    def at_the_cap(soft, threshold, min_size, max_size):
        caps.append(max_size)
        return ChannelGroups.from_members([[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]], 6)

    monkeypatch.setattr(loop, "regroup", at_the_cap)
    assert (
        main(
            [
                "train",
                *BASE,
                "--root",
                str(tiny_folder),
                "--out",
                str(tmp_path / "soft"),
                "--epochs",
                "2",
                "--variant",
                "mc-soft",
                "--xi",
                "2",
                "--head",
                "gap",
            ]
        )
        == 0
    )
    assert len(caps) > 3 and set(caps) == {4}
    # and after a resume
    caps.clear()
    assert main(["train", "--resume", str(tmp_path / "soft"), "--epochs", "3"]) == 0
    assert caps and set(caps) == {4}


def test_lambda_warmup_and_div_options_are_recorded(tiny_folder, tmp_path):
    run = tmp_path / "warm"
    assert (
        main(
            [
                "train",
                *BASE,
                "--root",
                str(tiny_folder),
                "--out",
                str(run),
                "--epochs",
                "2",
                "--xi",
                "2",
                "--lam-warmup",
                "2",
                "--normalize-div",
                "--temperature",
                "2",
                "--div-region",
                "object",
            ]
        )
        == 0
    )
    meta = load_checkpoint(run / "last.safetensors")[1]
    assert meta.hparams["lam_warmup"] == 2 and meta.hparams["normalize_div"]
    assert meta.hparams["div_region"] == "object"
    assert meta.hparams["temperature"] == 2.0
    assert [r["lam"] for r in rows(run)] == [0.0, 5.0]  # lambda 10 ramped over 2 epochs


def test_label_smoothing_is_trained_with_and_recorded(tiny_folder, tmp_path, capsys, monkeypatch):
    import torch.nn.functional as F

    seen = []
    real = F.cross_entropy

    def spy(*a, **kw):
        seen.append(kw.get("label_smoothing", 0.0))
        return real(*a, **kw)

    monkeypatch.setattr(F, "cross_entropy", spy)
    run = tmp_path / "smooth"
    assert (
        main(
            [
                "train",
                *BASE,
                "--root",
                str(tiny_folder),
                "--out",
                str(run),
                "--epochs",
                "1",
                "--variant",
                "ce",
                "--label-smoothing",
                "0.1",
            ]
        )
        == 0
    )
    assert seen and set(seen) == {0.1}
    assert load_checkpoint(run / "last.safetensors")[1].hparams["label_smoothing"] == 0.1
    assert (
        main(
            [
                "train",
                *BASE,
                "--root",
                str(tiny_folder),
                "--out",
                str(tmp_path / "bad"),
                "--epochs",
                "1",
                "--label-smoothing",
                "1.5",
            ]
        )
        == 2
    )
    assert "label_smoothing" in capsys.readouterr().err


def test_div_anchor_freezes_the_network_after_k_epochs_and_survives_resume(tiny_folder, tmp_path):
    args = [*BASE, "--root", str(tiny_folder), "--xi", "2"]
    run = tmp_path / "anchor"
    assert (
        main(["train", *args, "--out", str(run), "--epochs", "2", "--div-anchor", "1", "--div-anchor-sd", "0.5"]) == 0
    )
    assert [r["lam"] for r in rows(run)] == [0.0, 10.0]  # no L_div before the anchor, then all of it
    hp = load_checkpoint(run / "last.safetensors")[1].hparams
    assert hp["div_anchor"] == 1 and hp["div_anchor_sd"] == 0.5
    st = torch.load(run / "state.pt", weights_only=True)
    # the anchor is the network after one epoch of MC-Loss minus L_div (same seed, same draws)
    ref = tmp_path / "no-div"
    assert main(["train", *args, "--out", str(ref), "--epochs", "1", "--variant", "mc-no-div"]) == 0
    ref_model = torch.load(ref / "state.pt", weights_only=True)["model"]
    for k, v in ref_model.items():
        assert torch.allclose(st["anchor"][k].float(), v.float(), atol=1e-5), k
    assert any(not torch.equal(st["anchor"][k], st["model"][k]) for k in st["model"])
    # a resumed run keeps the frozen anchor rather than freezing the network it resumes
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 0
    st3 = torch.load(run / "state.pt", weights_only=True)
    for k, v in st["anchor"].items():
        assert torch.equal(st3["anchor"][k], v), k


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--variant", "ce"], "variant"),
        (["--div-region", "object"], "combined"),
        (["--epochs", "2", "--div-anchor", "2"], ">= epochs"),
        (["--div-anchor", "0", "--div-anchor-sd", "1"], "needs div_anchor"),
        (["--div-anchor-sd", "-1"], ">= 0"),
    ],
)
def test_div_anchor_refuses_what_it_cannot_mean(extra, match, tiny_folder, tmp_path, capsys):
    argv = [
        "train",
        *BASE,
        "--root",
        str(tiny_folder),
        "--out",
        str(tmp_path / "r"),
        "--epochs",
        "3",
        "--div-anchor",
        "1",
        *extra,
    ]
    assert main(argv) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "r" / "state.pt").exists()


def test_lambda_schedules():
    from mcviz.train.config import TrainConfig
    from mcviz.train.diversity import lam_at

    def lams(**kw):
        cfg = TrainConfig(dataset="folder", root="r", out="o", epochs=8, lam=12.0, **kw)
        return [lam_at(cfg, e) for e in range(8)]

    assert lams() == [12.0] * 8
    assert lams(lam_warmup=3) == [0.0, 4.0, 8.0] + [12.0] * 5
    assert lams(div_anchor=2) == [0.0, 0.0] + [12.0] * 6
    # the ramp starts at the anchor, and L_div is on from that epoch
    assert lams(div_anchor=2, lam_warmup=3) == [0.0, 0.0, 4.0, 8.0] + [12.0] * 4


def test_anchor_region_thresholds_the_frozen_mean_map():
    from mcviz.core.models import build_model
    from mcviz.train.diversity import anchor_region, frozen_copy

    torch.manual_seed(0)
    anchor = frozen_copy(build_model("small", 3, xi=2))
    x = torch.randn(2, 3, 32, 32)
    m = anchor.features(x).mean(dim=1)
    flat = m.flatten(1)
    for sd in (0.0, 1.0):
        want = m >= (flat.mean(1) + sd * flat.std(1))[:, None, None]
        assert torch.equal(anchor_region(anchor, x, sd), want)
    assert anchor_region(anchor, x, 1.0).sum() < anchor_region(anchor, x).sum()
    # a threshold above every cell keeps the peak only
    top = anchor_region(anchor, x, 100.0)
    assert top.flatten(1).sum(1).tolist() == [1, 1]
    assert torch.equal(top.flatten(1).float().argmax(1), flat.argmax(1))
    assert not any(p.requires_grad for p in anchor.parameters()) and not anchor.training


def test_soft_label_terms_train_the_se_block_only():
    from mcviz.core.models import build_model
    from mcviz.core.soft_labels import l_inter, l_intra
    from mcviz.train.loop import _TrainForward

    model = build_model("small", 3, xi=2, soft=True)
    feats, logits, w = _TrainForward(model)(torch.randn(4, 3, 32, 32))
    (l_intra(w, torch.tensor([0, 0, 1, 2]), 3) + l_inter(w)).backward()
    assert all(p.grad is not None for p in model.se.parameters())
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("se."))
    assert torch.allclose(w, model.se(feats))  # same weights as the CE stream's


@pytest.mark.slow
def test_fork_at_the_anchor_trains_what_the_full_command_trains(tmp_path):
    from fork_run import fork  # scripts/ is on the path (conftest)

    from mcviz.train.state import load_state

    data = make_folder_dataset(tmp_path / "d", classes=3, per_class=24, size=40)
    args = [*BASE, "--root", str(data), "--epochs", "4", "--image-size", "40", "--xi", "2", "--div-anchor", "2"]
    src = tmp_path / "src"
    proc = subprocess.Popen(
        _cli(*args, "--out", str(src)),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if load_state(src)["epoch"] >= 1:
                    break
            except Exception:  # not written yet
                pass
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGSTOP)  # freeze the run while its folder is copied
        snap = tmp_path / "snap"
        shutil.copytree(src, snap)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert 1 <= load_state(snap)["epoch"] <= 2
    dst = tmp_path / "dst"
    cfg = fork(snap, dst, {"div_anchor_sd": 0.5, "lam_warmup": 2})
    assert cfg.div_anchor_sd == 0.5 and cfg.lam_warmup == 2 and "--div-anchor-sd 0.5" in cfg.command
    res = subprocess.run(
        [sys.executable, "-m", "mcviz", "train", "--resume", str(dst)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    full = tmp_path / "full"
    subprocess.run(
        _cli(*args, "--div-anchor-sd", "0.5", "--lam-warmup", "2", "--out", str(full)),
        check=True,
        env=_env(),
        capture_output=True,
        timeout=600,
    )
    assert [r["lam"] for r in rows(dst)] == [r["lam"] for r in rows(full)] == [0.0, 0.0, 5.0, 10.0]
    a, b = load_file(full / "last.safetensors"), load_file(dst / "last.safetensors")
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    # too late once the run is past its anchor
    with pytest.raises(SystemExit, match="past its anchor"):
        fork(full, tmp_path / "late", {"lam_warmup": 1})


def test_mixup_blends_inputs_and_losses(tiny_folder, tmp_path):
    """--mixup A: inputs are convex blends of the batch with itself, the CE (and MC-Loss) weighted
    alike; recorded in the checkpoint; refused where the soft labels need one label per image."""
    import random

    from mcviz.train.config import TrainConfig
    from mcviz.train.mixup import mixed as _mixed

    cfg = TrainConfig(dataset="folder", root="r", out="o", mixup=0.4)
    random.seed(0)
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 4, 4), torch.arange(6)
    mixed, y_b, lam = _mixed(cfg, x, y)
    assert 0 < lam < 1 and sorted(y_b.tolist()) == list(range(6))
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[y_b])  # y = arange: y_b is the permutation
    assert _mixed(TrainConfig(dataset="folder", root="r", out="o"), x, y)[2] == 1.0
    with pytest.raises(ValueError, match="mc-soft"):
        TrainConfig(dataset="folder", root="r", out="o", mixup=0.2, variant="mc-soft")
    for variant in ("ce", "mc"):
        run = tmp_path / variant
        assert (
            main(
                [
                    "train",
                    *BASE,
                    "--root",
                    str(tiny_folder),
                    "--out",
                    str(run),
                    "--epochs",
                    "1",
                    "--variant",
                    variant,
                    "--mixup",
                    "0.4",
                ]
            )
            == 0
        )
        assert math.isfinite(rows(run)[0]["train_loss"])
        assert load_checkpoint(run / "last.safetensors")[1].hparams["mixup"] == 0.4


def test_distillation_is_trained_with_and_logged(tiny_folder, tmp_path):
    """--distill: the KD term is part of the loss, logged per epoch, and falls as the student learns."""
    teacher = tmp_path / "teacher"
    assert (
        main(["train", *BASE, "--root", str(tiny_folder), "--out", str(teacher), "--epochs", "3", "--variant", "ce"])
        == 0
    )
    run = tmp_path / "kd"
    assert (
        main(
            [
                "train",
                *BASE,
                "--root",
                str(tiny_folder),
                "--out",
                str(run),
                "--epochs",
                "4",
                "--variant",
                "mc",
                "--head",
                "class-connected-avg",
                "--distill",
                str(teacher / "last.safetensors"),
                "--distill-weight",
                "5",
                "--distill-temperature",
                "2",
                "--lr",
                "0.02",
            ]
        )
        == 0
    )
    kd = [r["train_kd"] for r in rows(run)]
    assert all(math.isfinite(v) for v in kd) and kd[-1] < kd[0]
    assert load_checkpoint(run / "last.safetensors")[1].hparam("distill_weight") == 5


def test_distillation_term_is_the_softened_kl():
    """T^2 x KL(teacher || student): zero for the teacher's own logits, and the hand-written sum otherwise."""
    from types import SimpleNamespace

    from mcviz.train.distill import distill_term

    t_logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    teacher = SimpleNamespace(features=lambda x, after: x, logits_from_features=lambda f: t_logits)
    assert float(distill_term(teacher, torch.zeros(2), t_logits.clone(), None, 2.0)) == pytest.approx(0.0, abs=1e-6)
    s_logits = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    p, q = torch.softmax(t_logits / 2, 1), torch.softmax(s_logits / 2, 1)
    want = 4 * float((p * (p / q).log()).sum(1).mean())
    assert float(distill_term(teacher, torch.zeros(2), s_logits, None, 2.0)) == pytest.approx(want, rel=1e-5)


def test_distillation_refuses_a_teacher_that_does_not_fit(tiny_folder, tmp_path, capsys):
    other = make_folder_dataset(tmp_path / "other", classes=4)
    teacher = tmp_path / "teacher"
    assert main(["train", *BASE, "--root", str(other), "--out", str(teacher), "--epochs", "1", "--variant", "ce"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                *BASE,
                "--root",
                str(tiny_folder),
                "--out",
                str(tmp_path / "s"),
                "--epochs",
                "1",
                "--distill",
                str(teacher / "last.safetensors"),
                "--distill-weight",
                "1",
            ]
        )
        == 2
    )
    assert "its classes are not this data set's" in capsys.readouterr().err
    with pytest.raises(ValueError, match="go together"):
        TrainConfig(dataset="folder", root="r", out="o", distill_weight=1.0)


def test_map_blur_is_trained_with_recorded_and_described(tiny_folder, tmp_path):
    """--map-blur: the model's MC features end in the blur, the checkpoint rebuilds it, and the
    model's description says so."""
    from mcviz.core.models import MapBlur
    from mcviz.io.describe import training_name

    run = tmp_path / "blur"
    args = ["train", *BASE, "--root", str(tiny_folder), "--out", str(run), "--epochs", "1"]
    assert main([*args, "--head", "class-connected-avg", "--map-blur", "1"]) == 0
    model, meta = load_checkpoint(run / "last.safetensors")
    assert meta.map_blur == 1.0 and isinstance(model.mc_layer[-1], MapBlur)
    assert "maps blurred by a Gaussian of 1 cell" in training_name(meta)
