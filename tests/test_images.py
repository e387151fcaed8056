import numpy as np
import pytest

from mcviz.data.images import ImageError, open_image

from .badfiles import bad_files, exif_rotated


@pytest.mark.parametrize("case", list(bad_files()))
def test_every_awkward_file(case):
    name, data, refused = bad_files()[case]
    if refused:
        with pytest.raises(ImageError, match=name.replace(".", r"\.")):
            open_image(data, name=name)
    else:
        img = open_image(data, name=name)
        assert img.mode == "RGB" and min(img.size) >= 1


def test_exif_orientation_is_applied():
    assert open_image(exif_rotated()).size == (20, 60)


def test_sixteen_bit_keeps_its_range():
    from PIL import Image
    import io

    arr = np.linspace(0, 65535, 64 * 48).astype(np.uint16).reshape(48, 64)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    out = np.asarray(open_image(buf.getvalue()))
    assert out.min() == 0 and out.max() == 255  # stretched, not clipped to white


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageError, match="nothere.jpg"):
        open_image(tmp_path / "nothere.jpg")


def _quadrants(w, h):
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[: h // 2, : w // 2] = (220, 20, 20)
    arr[: h // 2, w // 2 :] = (20, 220, 20)
    arr[h // 2 :, : w // 2] = (20, 20, 220)
    arr[h // 2 :, w // 2 :] = (240, 240, 240)
    return arr


def _jpeg(arr, orientation=None, mode="RGB"):
    import io

    from PIL import Image

    img = Image.fromarray(arr).convert(mode)
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(buf, format="JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "CMYK", "L"])
def test_large_jpeg_is_decoded_small_with_its_colours(mode):
    data = _jpeg(_quadrants(4000, 3000), mode=mode)
    full = open_image(data)
    small = open_image(data, min_side=256)
    assert full.size == (4000, 3000)
    assert 256 <= min(small.size) < 512 and small.size[0] / small.size[1] == pytest.approx(4 / 3, rel=0.01)
    # the same picture: the full decode, shrunk, differs by JPEG noise only
    ref = np.asarray(full.resize(small.size), dtype=np.float32)
    assert np.abs(np.asarray(small, dtype=np.float32) - ref).mean() < 4


def test_large_jpeg_keeps_its_exif_rotation():
    # orientation 6: stored landscape, shown rotated 90 degrees clockwise (portrait)
    data = _jpeg(_quadrants(4000, 3000), orientation=6)
    small, full = open_image(data, min_side=256), open_image(data)
    assert small.size[1] > small.size[0] and full.size == (3000, 4000)
    ref = np.asarray(full.resize(small.size), dtype=np.float32)
    assert np.abs(np.asarray(small, dtype=np.float32) - ref).mean() < 4
    # the stored top-left (red) is now top-right
    w, h = small.size
    assert tuple(np.asarray(small)[h // 4, 3 * w // 4]) == pytest.approx((220, 20, 20), abs=12)


def test_large_png_is_reduced_and_small_images_are_untouched():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_quadrants(2000, 1200)).save(buf, format="PNG")
    small = open_image(buf.getvalue(), min_side=300)
    assert small.size == (500, 300)
    assert tuple(np.asarray(small)[10, 10]) == (220, 20, 20)
    assert open_image(_jpeg(_quadrants(400, 300)), min_side=256).size == (400, 300)
