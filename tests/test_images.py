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
