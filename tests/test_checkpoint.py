import json
import os
import pickle

import pytest
import torch

from mcviz import ChannelGroups, CheckpointError, build_model, load_checkpoint, save_checkpoint
from mcviz.io.checkpoint import read_metadata

META = {
    "backbone": "small",
    "class_names": ["a", "b", "c"],
    "input": {"crop": 32, "resize": 36, "mean": [0.5] * 3, "std": [0.25] * 3},
    "variant": "mc",
    "dataset": "folder",
}


def _model():
    torch.manual_seed(0)
    m = build_model("small", 3, ChannelGroups.from_sizes([2, 3, 2]), head="gap", predict="mc")
    m.train()(torch.randn(4, 3, 32, 32))  # move BN running stats away from defaults
    return m.eval()


def test_round_trip(tmp_path):
    m = _model()
    p = tmp_path / "m.safetensors"
    save_checkpoint(p, m, META)
    m2, meta = load_checkpoint(p)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(m(x), m2(x), atol=1e-6)
    assert m2.groups == m.groups and m2.predict == "mc" and m2.head_kind == "gap"
    assert meta.class_names == ["a", "b", "c"] and meta.format == "mcviz-checkpoint/1"
    assert meta.mcviz_version and read_metadata(p).groups == {"sizes": [2, 3, 2]}
    assert not m2.training


def test_header_length_with_a_pickle_like_first_byte_still_loads(tmp_path):
    # The first byte of a safetensors file is the low byte of its header length; 0x80 is
    # also a pickle's first byte. Such a checkpoint (1 in 256 by chance) must load.
    m = _model()
    p = tmp_path / "m.safetensors"
    for pad in range(300):
        save_checkpoint(p, m, {**META, "pad": "x" * pad})
        if p.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no padding gave a header length with low byte 0x80")
    assert load_checkpoint(p)[1].raw["pad"] == "x" * pad
    p.write_bytes(p.read_bytes()[:100])  # ...and truncated, it is still refused clearly
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


def test_fp16_storage_is_half_the_size(tmp_path):
    m = _model()
    save_checkpoint(tmp_path / "32.safetensors", m, META)
    save_checkpoint(tmp_path / "16.safetensors", m, META, dtype=torch.float16)
    s32, s16 = (os.path.getsize(tmp_path / f"{b}.safetensors") for b in (32, 16))
    assert s16 < 0.56 * s32
    m16, meta = load_checkpoint(tmp_path / "16.safetensors")
    assert meta.storage_dtype == "float16"
    assert next(m16.parameters()).dtype == torch.float32
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(m(x), m16(x), atol=5e-2)


def test_pickle_is_refused_without_unpickling(tmp_path):
    p = tmp_path / "model.pt"
    torch.save(_model().state_dict(), p)
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(p)

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    q = tmp_path / "evil.pkl"
    q.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(q)
    assert not (tmp_path / "pwned").exists()


def test_truncated_and_garbage(tmp_path):
    p = tmp_path / "m.safetensors"
    save_checkpoint(p, _model(), META)
    data = p.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"hello, this is not a model at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "empty.safetensors")
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_shapes_that_do_not_fit_metadata(tmp_path):
    from safetensors.torch import load_file, save_file

    p = tmp_path / "m.safetensors"
    save_checkpoint(p, _model(), META)
    tensors = load_file(p)
    meta = read_metadata(p).to_dict()
    meta["num_classes"] = 4
    meta["groups"] = {"sizes": [2, 3, 2, 1]}
    q = tmp_path / "other.safetensors"
    save_file(tensors, q, metadata={"mcviz": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="do not fit a small model with 4 classes"):
        load_checkpoint(q)
    save_file(tensors, tmp_path / "nometa.safetensors")
    with pytest.raises(CheckpointError, match="no mcviz metadata"):
        load_checkpoint(tmp_path / "nometa.safetensors")


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "m.safetensors"
    save_checkpoint(p, _model(), META)
    before = p.read_bytes()

    def die(*a, **k):
        raise KeyboardInterrupt  # a kill between writing and publishing

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(p, build_model("small", 3, xi=4), META)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["m.safetensors"]


def _lite_meta():
    return {**META, "backbone": "lite0", "hparams": {"freeze": "head_conv", "pretrained": True}}


def test_a_frozen_packaged_body_is_left_out_and_rebuilt_from_its_package(tmp_path):
    torch.manual_seed(0)
    m = build_model("lite0", 3, ChannelGroups.uniform(3, 2), pretrained=True, head="class-connected-avg").eval()
    with torch.no_grad():  # the trained layers, unlike the body, are not the package's
        m.mc_layer[0].weight.normal_()
        m.head[-1].weight.uniform_(-1, 1)
    slim, whole = tmp_path / "slim.safetensors", tmp_path / "whole.safetensors"
    save_checkpoint(slim, m, _lite_meta(), packaged_body="head_conv")
    save_checkpoint(whole, m, _lite_meta())
    assert os.path.getsize(slim) < 0.2 * os.path.getsize(whole)
    from safetensors import safe_open

    with safe_open(str(slim), "pt") as f:
        assert not any(k.startswith("model.body.") for k in f.keys())
    loaded, meta = load_checkpoint(slim)
    assert meta.raw["packaged_body"]["through"] == "head_conv"
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))
    # a body that is not the package's is never passed off as one
    with torch.no_grad():
        m.body.stem[0].weight.add_(1e-3)
    tampered = tmp_path / "tampered.safetensors"
    save_checkpoint(tampered, m, _lite_meta(), packaged_body="head_conv")
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(tampered))
    bad = dict(read_metadata(tampered).raw)
    bad["packaged_body"] = {"through": "head_conv", "sha256": "0" * 64}
    save_file(tensors, str(tampered), metadata={"mcviz": json.dumps(bad)})
    with pytest.raises(CheckpointError, match="differs from the installed weights package"):
        load_checkpoint(tampered)


def test_packaged_body_needs_a_packaged_backbone(tmp_path):
    with pytest.raises(ValueError, match="no packaged weights"):
        save_checkpoint(tmp_path / "m.safetensors", _model(), META, packaged_body="stage2")
