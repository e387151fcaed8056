"""The frozen-trunk cache: same numbers as running the trunk, reused, resumed, never stale."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from mcviz import build_model, load_checkpoint
from mcviz.cli import main
from mcviz.data import EvalTransform, build
from mcviz.core.models import input_norm
from mcviz.trunk.cache import CachedFeatures, ViewTransform, build_cache, cache_key
from mcviz.trunk.split_pass import SplitPass

LITE = [
    "--dataset",
    "folder",
    "--backbone",
    "lite0",
    "--pretrained",
    "--freeze",
    "block5",
    "--image-size",
    "64",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--lr",
    "0.05",
    "--xi",
    "2",
]


def _trunk_and_data(root):
    model = build_model("lite0", 3, xi=2, pretrained=True).eval()
    trunk = model.split_at("block5")[0]
    mean, std = input_norm("lite0")
    return model, trunk, build("folder", root, "train"), EvalTransform(64, mean=mean, std=std)


def test_cached_views_are_the_trunk_outputs(tiny_folder, tmp_path):
    model, trunk, ds, evaltf = _trunk_and_data(tiny_folder)
    tf = ViewTransform(evaltf, views=3)
    folder = build_cache(ds, trunk, tf, tmp_path / "c", batch_size=4, workers=0, progress=False)
    feats = np.load(folder / "features.npy")
    assert feats.shape[:2] == (len(ds), 3) and feats.dtype == np.float16
    with torch.no_grad():
        for i in (0, len(ds) - 1):
            want = trunk(tf(ds.load(i), i)).numpy()
            np.testing.assert_allclose(feats[i], want, rtol=1e-2, atol=1e-2)
            # view 0 is the evaluation crop, view 1 its mirror
            np.testing.assert_allclose(feats[i, 0], trunk(evaltf(ds.load(i))[None])[0].numpy(), rtol=1e-2, atol=1e-2)
    # a random crop is seeded per image and view: the same on every build
    assert torch.equal(tf(ds.load(2), 2)[2], tf(ds.load(2), 2)[2])


def test_killed_build_resumes_to_the_same_file(tiny_folder, tmp_path):
    _, trunk, ds, evaltf = _trunk_and_data(tiny_folder)
    tf = ViewTransform(evaltf, views=2)
    full = build_cache(ds, trunk, tf, tmp_path / "full", batch_size=4, workers=0, progress=False)
    part = tmp_path / "part"
    build_cache(ds, trunk, tf, part, batch_size=4, workers=0, progress=False)
    # as if killed after 8 images: the rest of the file is garbage, progress says 8
    mm = np.load(part / "features.npy", mmap_mode="r+")
    mm[8:] = 7.0
    mm.flush()
    del mm
    (part / "progress.json").write_text(json.dumps({"done": 8, "complete": False}))
    build_cache(ds, trunk, tf, part, batch_size=4, workers=0, progress=False)
    assert np.array_equal(np.load(full / "features.npy"), np.load(part / "features.npy"))
    assert json.loads((part / "progress.json").read_text())["complete"]


def test_key_changes_with_trunk_views_and_images(tiny_folder):
    model, trunk, ds, evaltf = _trunk_and_data(tiny_folder)
    tf = ViewTransform(evaltf, views=2)
    k = cache_key(ds, trunk, tf, {"split": "train"})
    assert k == cache_key(ds, trunk, tf, {"split": "train"})
    assert k != cache_key(ds, trunk, ViewTransform(evaltf, views=3), {"split": "train"})
    assert k != cache_key(ds, trunk, tf, {"split": "test"})
    # the same images named from another folder (relative vs absolute root) share the cache
    import os

    assert k == cache_key(build("folder", os.path.relpath(tiny_folder), "train"), trunk, tf, {"split": "train"})
    fewer = build("folder", tiny_folder, "train")
    fewer.samples = fewer.samples[1:]
    assert k != cache_key(fewer, trunk, tf, {"split": "train"})
    # a checkpoint stored in float16 still finds the cache its float32 weights made
    import copy

    half = copy.deepcopy(trunk)
    with torch.no_grad():
        for v in half.state_dict().values():
            if v.is_floating_point():
                v.copy_(v.half().float())
    assert k == cache_key(ds, half, tf, {"split": "train"})
    with torch.no_grad():
        trunk.block5[0].bn1.running_mean += 1
    assert k != cache_key(ds, trunk, tf, {"split": "train"})


def test_cached_features_draw_one_view_per_image(tmp_path):
    feats = np.lib.format.open_memmap(tmp_path / "features.npy", mode="w+", dtype=np.float16, shape=(50, 3, 1, 1, 1))
    for v in range(3):
        feats[:, v] = v
    feats.flush()
    np.save(tmp_path / "targets.npy", np.arange(50) % 2)
    ds = CachedFeatures(tmp_path, ["a", "b"], seed=0)
    seen0 = [float(ds[i][0]) for i in range(50)]
    assert set(seen0) == {0.0, 1.0, 2.0}
    ds.set_epoch(1)
    assert [float(ds[i][0]) for i in range(50)] != seen0
    assert ds[3][1] == 1 and ds.targets[:4] == [0, 1, 0, 1]


@pytest.mark.slow
def test_frozen_recipe_trains_resumes_and_matches_image_eval(tiny_folder, tmp_path, capsys):
    cache = tmp_path / "cache"
    run = tmp_path / "run"
    args = [*LITE, "--root", str(tiny_folder), "--cache-dir", str(cache), "--variant", "mc"]
    assert main(["train", *args, "--out", str(run), "--epochs", "1"]) == 0
    folders = sorted(p.name for p in cache.iterdir())
    assert len(folders) == 2 and folders[0].startswith("folder-test-lite0-block5-")
    stamp = {p: (p / "features.npy").stat().st_mtime_ns for p in cache.iterdir()}
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert {p: (p / "features.npy").stat().st_mtime_ns for p in cache.iterdir()} == stamp  # reused, not rebuilt
    model, meta = load_checkpoint(run / "last.safetensors")
    assert meta.hparams["freeze"] == "block5" and meta.input["mean"] == [0.5, 0.5, 0.5]
    # the frozen trunk is still the pretrained one, BatchNorm statistics included
    pre = build_model("lite0", 3, xi=2, pretrained=True)
    for k, v in pre.split_at("block5")[0].state_dict().items():
        assert torch.equal(model.split_at("block5")[0].state_dict()[k], v), k
    assert not torch.equal(model.body.block6[0].conv_pw.weight, pre.body.block6[0].conv_pw.weight)
    # evaluating on images gives what training measured on the cache
    trained = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]
    capsys.readouterr()
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
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["top1"] == pytest.approx(trained["top1"], abs=1e-3)
    assert res["mean_h"] == pytest.approx(trained["mean_h"], abs=2e-2)
    assert res["source"] == "images"
    # ... and so does `mcviz eval` through the training run's cache of the frozen trunk
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
                "--cache-dir",
                str(cache),
                "--json",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    fast = json.loads(out.strip().splitlines()[-1])
    assert fast["source"] == "cache" and "through the cached frozen trunk" in out
    assert fast["top1"] == pytest.approx(res["top1"], abs=1e-3) and fast["n"] == res["n"]
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
                "--cache-dir",
                str(cache),
                "--no-cache",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["source"] == "images"


def test_a_run_that_builds_its_caches_trains_like_one_that_finds_them(tiny_folder, tmp_path):
    """Building a cache iterates a DataLoader, which draws from the global RNG: without a guard
    the CWA masks after it differ from those of a run whose caches were already there, and the
    same command gives other weights depending on which ran first."""
    args = [
        *LITE,
        "--root",
        str(tiny_folder),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--variant",
        "mc",
        "--epochs",
        "1",
        "--seed",
        "1",
    ]
    assert main(["train", *args, "--out", str(tmp_path / "builds")]) == 0
    assert main(["train", *args, "--out", str(tmp_path / "finds")]) == 0
    a, _ = load_checkpoint(tmp_path / "builds" / "last.safetensors")
    b, _ = load_checkpoint(tmp_path / "finds" / "last.safetensors")
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


def test_freeze_refusals(tiny_folder, tmp_path, capsys):
    base = [
        "train",
        "--dataset",
        "folder",
        "--root",
        str(tiny_folder),
        "--backbone",
        "lite0",
        "--workers",
        "0",
        "--image-size",
        "32",
        "--epochs",
        "1",
    ]
    assert main([*base, "--out", str(tmp_path / "a"), "--freeze", "block5"]) == 2
    assert "needs --pretrained" in capsys.readouterr().err
    assert (
        main(
            [
                *base,
                "--out",
                str(tmp_path / "b"),
                "--pretrained",
                "--freeze",
                "layer9",
                "--cache-dir",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "not a step of this backbone" in err and "block5" in err and "Traceback" not in err


@pytest.mark.slow
def test_one_cache_serves_a_deeper_freeze(tiny_folder, tmp_path, capsys):
    cache = tmp_path / "cache"
    args = [*LITE, "--root", str(tiny_folder), "--cache-dir", str(cache), "--variant", "ce", "--epochs", "1"]
    assert main(["train", *args, "--out", str(tmp_path / "a")]) == 0
    before = sorted(p.name for p in cache.iterdir())
    deeper = [a if a != "block5" else "head_conv" for a in args] + ["--cache-layer", "block5"]
    assert main(["train", *deeper, "--out", str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in cache.iterdir()) == before  # the block5 cache, reused
    model, meta = load_checkpoint(tmp_path / "b" / "last.safetensors")
    pre = build_model("lite0", 3, xi=2, pretrained=True)
    assert torch.equal(model.body.head_conv[0].weight, pre.body.head_conv[0].weight)
    assert torch.equal(model.body.block6[0].bn1.running_mean, pre.body.block6[0].bn1.running_mean)
    assert meta.hparams["cache_layer"] == "block5"
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                *[a if a != "block5" else "block4" for a in args],
                "--cache-layer",
                "block5",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )
    assert "comes after --freeze" in capsys.readouterr().err


def test_localize_from_the_trunk_cache_matches_the_images(tmp_path):
    from mcviz.data import CUB
    from mcviz.evaluate.localization import localize
    from mcviz.trunk.cache import cache_folder

    from .test_data import make_cub

    root = make_cub(tmp_path / "CUB", n_per_class=4)
    model = build_model("lite0", 3, xi=3, pretrained=True).eval()
    mean, std = input_norm("lite0")
    tf = EvalTransform(64, mean=mean, std=std)
    meta = {"input": tf.config(), "hparams": {"freeze": "block5"}, "dataset": "cub", "backbone": "lite0"}
    trunk, views = model.split_at("block5")[0], ViewTransform(tf, 1)
    what = {"dataset": "cub", "split": "test", "backbone": "lite0", "layer": "block5"}
    ds = CUB(root, "test")
    run = SplitPass(
        model, meta, "cub", str(root), workers=0, progress=False, batch_size=4, cache_dir=str(tmp_path / "cache")
    )
    # no cache yet: the images are read
    assert localize(run).source == "images"
    build_cache(ds, trunk, views, cache_folder(tmp_path / "cache", ds, trunk, views, what), workers=0, progress=False)
    fast = localize(run)
    slow = localize(dataclasses.replace(run, use_cache=False))
    assert fast.source == "cache" and slow.source == "images"
    for k, v in slow.as_dict().items():
        if k != "source":
            assert fast.as_dict()[k] == pytest.approx(v, abs=1e-9), k


def _frozen_lite0_checkpoint(tmp_path):
    """``(a tiny CUB, a lite0 checkpoint trained with --freeze head_conv --cache-layer block5)``."""
    from mcviz import save_checkpoint

    from .test_data import make_cub

    root = make_cub(tmp_path / "CUB", n_per_class=4)
    torch.manual_seed(0)
    model = build_model("lite0", 3, xi=3, pretrained=True).eval()
    mean, std = input_norm("lite0")
    ck = tmp_path / "m.safetensors"
    save_checkpoint(
        ck,
        model,
        {
            "backbone": "lite0",
            "dataset": "cub",
            "variant": "mc",
            "class_names": ["a", "b", "c"],
            "input": EvalTransform(64, mean=mean, std=std).config(),
            "hparams": {"freeze": "head_conv", "cache_layer": "block5"},
        },
    )
    return root, ck


def test_cache_command_then_rank_reads_it_with_the_same_numbers(tmp_path, capsys):
    """`mcviz cache` writes the evaluation view where `mcviz rank` (and every eval-time command)
    looks; the effect ranking from the cache equals the one from the images."""
    from mcviz import save_checkpoint
    from mcviz.explain.effect import collect_pooled
    from mcviz.explain.rankings import load_effect_ranking

    root, ck = _frozen_lite0_checkpoint(tmp_path)
    model, meta = load_checkpoint(ck)
    cache = str(tmp_path / "cache")
    run = SplitPass(model, meta, "cub", str(root), workers=0, progress=False, cache_dir=cache)
    slow = collect_pooled(dataclasses.replace(run, use_cache=False))
    assert (
        main(["cache", str(ck), "--dataset", "cub", "--root", str(root), "--workers", "0", "--cache-dir", cache]) == 0
    )
    assert "cub-test-lite0-block5-" in capsys.readouterr().out
    fast = collect_pooled(run)
    assert fast.source == "cache" and slow.source == "images"
    # the cache holds float16: the same numbers to that precision
    assert torch.allclose(fast.pooled, slow.pooled, atol=2e-2, rtol=1e-2)
    assert main(["rank", str(ck), "--dataset", "cub", "--root", str(root), "--workers", "0", "--cache-dir", cache]) == 0
    assert load_effect_ranking(ck).images == 6
    # a checkpoint without a frozen trunk has nothing to cache
    plain = tmp_path / "plain.safetensors"
    save_checkpoint(plain, model, {**meta.to_dict(), "hparams": {}})
    assert main(["cache", str(plain), "--dataset", "cub", "--root", str(root), "--cache-dir", cache]) == 2
    assert "not trained with --freeze" in capsys.readouterr().err


def test_flip_averages_the_image_and_its_mirror_from_images_and_cache(tmp_path, capsys):
    """`mcviz eval --flip`: the mean of the class probabilities of each image and its mirror; from
    the images, and from a cache that `mcviz cache --flip` made (the same numbers)."""
    from mcviz.evaluate.accuracy import evaluate

    root, ck = _frozen_lite0_checkpoint(tmp_path)
    model, meta = load_checkpoint(ck)
    ds, after = SplitPass(model, meta, "cub", str(root), use_cache=False).inputs(flip=True)
    x, y = ds[0]
    assert after is None and x.shape[0] == 2 and torch.equal(x[1], x[0].flip(-1))
    with torch.no_grad():
        want = torch.softmax(model(x), dim=1).mean(dim=0)
    got = evaluate(model, [(x[None], torch.tensor([y]))], torch.device("cpu"), 3, progress=False)
    assert got["top1"] == (100.0 if int(want.argmax()) == y else 0.0)
    cache = str(tmp_path / "cache")
    assert (
        main(
            [
                "cache",
                str(ck),
                "--dataset",
                "cub",
                "--root",
                str(root),
                "--workers",
                "0",
                "--cache-dir",
                cache,
                "--flip",
            ]
        )
        == 0
    )
    capsys.readouterr()
    results = []
    for extra in (["--no-cache"], ["--cache-dir", cache]):
        assert (
            main(
                ["eval", str(ck), "--dataset", "cub", "--root", str(root), "--workers", "0", "--flip", "--json", *extra]
            )
            == 0
        )
        results.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert [r["source"] for r in results] == ["images", "cache"] and all(r["flip"] for r in results)
    assert results[0]["top1"] == results[1]["top1"] and results[0]["mean_h"] == pytest.approx(
        results[1]["mean_h"], abs=2e-2
    )
