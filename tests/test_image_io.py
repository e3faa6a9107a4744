"""load_rgb_image: every odd input becomes 8-bit RGB or a clear ImageLoadError."""

import io

import numpy as np
import pytest
from PIL import Image

from image_io import ImageLoadError, load_rgb_image


def png_bytes(image: Image.Image, fmt: str = "PNG", **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


RGB = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "1"])
def test_modes_become_rgb_of_same_size(mode):
    image = load_rgb_image(png_bytes(RGB.convert(mode)))
    assert image.mode == "RGB" and image.size == (20, 30)


def test_cmyk_jpeg_becomes_rgb():
    assert load_rgb_image(png_bytes(RGB.convert("CMYK"), "JPEG")).mode == "RGB"


def test_sixteen_bit_is_rescaled_not_clipped():
    values = np.linspace(0, 65535, 30 * 20).reshape(30, 20).astype(np.uint16)
    image = np.asarray(load_rgb_image(png_bytes(Image.fromarray(values))))
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 255
    assert 100 < image[15, 10, 0] < 160  # mid-grey, not white


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6
    assert load_rgb_image(png_bytes(RGB, "JPEG", exif=exif)).size == (30, 20)
    # A caller's image is transposed into a copy: the caller's own object keeps its size and orientation tag.
    opened = Image.open(io.BytesIO(png_bytes(RGB, "PNG", exif=exif)))
    assert load_rgb_image(opened).size == (30, 20)
    assert opened.size == (20, 30) and opened.getexif()[0x0112] == 6


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    data = png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert load_rgb_image(data).getpixel((0, 0))[0] > 200


@pytest.mark.parametrize(
    "data, reason",
    [(b"", "empty"), (b"plain text, not an image", "not a recognised image"),
     (png_bytes(RGB, "JPEG")[:200], "truncated")],
)
def test_bad_bytes_get_a_clear_error(data, reason):
    with pytest.raises(ImageLoadError, match=reason):
        load_rgb_image(data)


def test_missing_file_and_pixel_limit(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_rgb_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="pixel limit"):
        load_rgb_image(png_bytes(RGB), max_pixels=100)
