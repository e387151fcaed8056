import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from mcviz.data import DataError, EvalTransform, build, readable_name

from .conftest import need_data, write_image


def test_readable_names():
    assert readable_name("001.Black_footed_Albatross") == "Black-footed Albatross"
    assert readable_name("010.Red_winged_Blackbird") == "Red-winged Blackbird"
    assert readable_name("002.Laysan_Albatross") == "Laysan Albatross"
    assert readable_name("187.American_Three_toed_Woodpecker") == "American Three-toed Woodpecker"
    assert readable_name("017.AM General Hummer SUV 2000") == "AM General Hummer SUV 2000"


def make_cub(root: Path, n_per_class=2, classes=3) -> Path:
    lines = {k: [] for k in ("images", "labels", "split", "boxes", "locs")}
    iid = 0
    for c in range(classes):
        for k in range(n_per_class):
            iid += 1
            rel = f"{c + 1:03d}.Bird_{c}/img_{iid}.jpg"
            write_image(root / "images" / rel, size=(200, 100), seed=iid)
            lines["images"].append(f"{iid} {rel}")
            lines["labels"].append(f"{iid} {c + 1}")
            lines["split"].append(f"{iid} {1 if k % 2 == 0 else 0}")
            lines["boxes"].append(f"{iid} 20.0 10.0 100.0 50.0")
            for p in range(1, 16):
                vis = 1 if p != 3 else 0
                lines["locs"].append(f"{iid} {p} {50.0 + p if vis else 0.0} {40.0 if vis else 0.0} {vis}")
    (root / "images.txt").write_text("\n".join(lines["images"]) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(lines["labels"]) + "\n")
    (root / "train_test_split.txt").write_text("\n".join(lines["split"]) + "\n")
    (root / "bounding_boxes.txt").write_text("\n".join(lines["boxes"]) + "\n")
    (root / "classes.txt").write_text("".join(f"{c + 1} {c + 1:03d}.Bird_{c}_Black_footed\n" for c in range(classes)))
    (root / "parts").mkdir()
    from mcviz.data.cub import PART_NAMES

    (root / "parts" / "parts.txt").write_text("".join(f"{i} {p}\n" for i, p in enumerate(PART_NAMES, 1)))
    (root / "parts" / "part_locs.txt").write_text("\n".join(lines["locs"]) + "\n")
    return root


def test_cub_fixture_and_points_follow_the_transform(tmp_path):
    root = make_cub(tmp_path / "CUB")
    tf = EvalTransform(crop=112, resize=128)
    ds = build("cub", root, "train", tf, annotations=True)
    assert len(ds) == 3 and ds.classes[0] == "Bird 0 Black-footed"
    x, y, ann = ds[0]
    assert x.shape == (3, 112, 112) and y == 0
    # hand computation: 200x100 image squashed to 128x128 (sx = 0.64, sy = 1.28),
    # centre crop 112 starts at (128 - 112) / 2 = 8.
    px, py = 50.0 + 1, 40.0  # part 1
    assert ann["parts"][0, 0].item() == pytest.approx(px * 0.64 - 8)
    assert ann["parts"][0, 1].item() == pytest.approx(py * 1.28 - 8)
    assert ann["parts"][2].tolist() == [0.0, 0.0, 0.0]  # invisible part stays zero
    bx, by = 20 * 0.64 - 8, 10 * 1.28 - 8
    assert ann["box"].tolist() == pytest.approx([bx, by, 100 * 0.64, 50 * 1.28])
    # with the same transform, the pixel under a mapped point is the pixel under the original one
    test = build("cub", root, "test")
    assert len(test) == 3 and test.targets == [0, 1, 2]


def test_cub_missing_and_corrupt_files_are_named(tmp_path):
    root = make_cub(tmp_path / "CUB")
    (root / "train_test_split.txt").unlink()
    with pytest.raises(DataError, match="train_test_split.txt is missing"):
        build("cub", root, "train")
    root2 = make_cub(tmp_path / "CUB2")
    victim = sorted((root2 / "images").rglob("*.jpg"))[0]
    victim.unlink()
    with pytest.raises(DataError, match=victim.name):
        build("cub", root2, "train")
    root3 = make_cub(tmp_path / "CUB3")
    bad = sorted((root3 / "images").rglob("*.jpg"))[0]
    bad.write_bytes(b"\xff\xd8\xff garbage")
    ds = build("cub", root3, "train", EvalTransform(32))
    with pytest.raises(DataError, match=bad.name):
        ds[0]
    # in a DataLoader worker the error still names the file
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1)
    with pytest.raises(DataError, match=bad.name):
        next(iter(loader))
    skipping = build("cub", root3, "train", EvalTransform(32), skip_bad=True)
    x, y = skipping[0]
    assert x.shape == (3, 32, 32) and y == 1  # the next readable image


def _write_cars(root: Path, n_classes=3, per_class=2):
    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    names = np.array([f"Make{c} Model {2000 + c}" for c in range(n_classes)], dtype=object)
    scipy.io.savemat(base / "devkit" / "cars_meta.mat", {"class_names": names[None, :]})
    for split, folder, mat in (
        ("train", "cars_train", base / "devkit" / "cars_train_annos.mat"),
        ("test", "cars_test", base / "cars_test_annos_withlabels.mat"),
    ):
        dt = [(k, "O") for k in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
        rows = np.zeros((1, n_classes * per_class), dtype=dt)
        i = 0
        for c in range(n_classes):
            for k in range(per_class):
                fname = f"{split}_{i:05d}.jpg"
                write_image(base / folder / fname, seed=i)
                rows[0, i] = (1, 1, 20, 20, c + 1, fname)
                i += 1
        scipy.io.savemat(mat, {"annotations": rows})


def test_cars_devkit_format(tmp_path):
    _write_cars(tmp_path)
    ds = build("cars", tmp_path, "train", EvalTransform(32))
    assert len(ds) == 6 and ds.classes[1] == "Make1 Model 2001" and sorted(set(ds.targets)) == [0, 1, 2]
    assert ds[0][0].shape == (3, 32, 32)
    # the data set's own folder works as root too
    assert len(build("cars", tmp_path / "stanford_cars", "test")) == 6
    with pytest.raises(DataError, match="stanford_cars"):
        build("cars", tmp_path / "nowhere", "train")


def test_real_cars_devkit_mat_files_parse():
    devkit = need_data("stanford_cars_devkit")
    meta = scipy.io.loadmat(devkit / "cars_meta.mat", squeeze_me=True)
    ann = scipy.io.loadmat(devkit / "cars_train_annos.mat", squeeze_me=True)["annotations"]
    assert len(meta["class_names"]) == 196 and len(ann) == 8144
    assert {"fname", "class"} <= set(ann.dtype.names)


def test_aircraft_format(tmp_path):
    data = tmp_path / "fgvc-aircraft-2013b" / "data"
    variants = ["707-320", "A320", "Cessna 172"]
    (data).mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    for split in ("trainval", "test", "train", "val"):
        lines = []
        for i, v in enumerate(variants * 2):
            iid = f"{split[:2]}{i:05d}"
            write_image(data / "images" / f"{iid}.jpg", seed=i)
            lines.append(f"{iid} {v}")
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
    ds = build("aircraft", tmp_path, "train")
    assert len(ds) == 6 and ds.classes == variants and ds.targets[:3] == [0, 1, 2]
    assert len(build("aircraft", tmp_path, "test")) == 6


def test_flowers_with_the_real_label_files(tmp_path):
    src = need_data("flowers-102")
    base = tmp_path / "flowers-102"
    (base / "jpg").mkdir(parents=True)
    for f in ("imagelabels.mat", "setid.mat"):
        shutil.copy(src / f, base / f)  # torchvision checks their md5
    ids = scipy.io.loadmat(base / "setid.mat", squeeze_me=True)["trnid"].tolist()
    tiny = Image.new("RGB", (4, 4), (200, 30, 30))
    for i in ids:
        tiny.save(base / "jpg" / f"image_{i:05d}.jpg")
    ds = build("flowers", tmp_path, "train", EvalTransform(16))
    assert len(ds) == 1020 and len(ds.classes) == 102 and len(set(ds.targets)) == 102
    assert ds.classes[0] == "Pink Primrose"
    assert ds[5][0].shape == (3, 16, 16)
    with pytest.raises(DataError, match="image_"):
        build("flowers", tmp_path, "test")  # test images were not written


def test_folder_format(tiny_folder):
    ds = build("folder", tiny_folder, "train")
    assert ds.classes == ["Class 0", "Class 1", "Class 2"] and len(ds) == 18
    with pytest.raises(DataError, match="does not exist"):
        build("folder", tiny_folder, "val")


def test_unknown_and_annotation_errors(tiny_folder):
    with pytest.raises(ValueError, match="unknown data set"):
        build("imagenet", tiny_folder)
    with pytest.raises(ValueError, match="'cub' only"):
        build("folder", tiny_folder, annotations=True)


def test_real_cub(cub_root):
    train = build("cub", cub_root, "train")
    test = build("cub", cub_root, "test", EvalTransform(112), annotations=True)
    assert len(train) == 5994 and len(test) == 5794
    assert len(train.classes) == 200 and train.classes[0] == "Black-footed Albatross"
    assert test.parts.shape == (5794, 15, 3) and len(test.part_names) == 15
    x, y, ann = test[0]
    assert x.shape == (3, 112, 112)
    vis = ann["parts"][:, 2] > 0
    assert vis.any()
    assert (ann["parts"][vis, :2] > -20).all() and (ann["parts"][vis, :2] < 132).all()


def test_real_stanford_cars_folder(cars_folder_root):
    train = build("folder", cars_folder_root, "train")
    test = build("folder", cars_folder_root, "test")
    assert (len(train), len(test)) == (5688, 2456)
    assert len(train.classes) == 196 and train.classes == test.classes
    assert train.classes[0] == "AM General Hummer SUV 2000"
    img = train.load(0)
    assert img.mode == "RGB" and min(img.size) == 128
