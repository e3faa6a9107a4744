"""corruptions: the robustness grid degrades any image into an RGB one of the same size, deterministically."""

import io

import numpy as np
import pytest
from PIL import Image

from corruptions import degrade, gaussian_blur, jpeg, robustness_grid

PIXELS = np.random.default_rng(0).integers(0, 256, (24, 36, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16"])
def test_every_degradation_gives_rgb_of_the_same_size(mode):
    image = Image.fromarray(PIXELS).convert(mode) if mode != "I;16" else Image.fromarray(PIXELS[..., 0].astype(np.uint16) * 257)
    for name, degradation in robustness_grid().items():
        first, second = degradation(image), degradation(image)
        assert (first.mode, first.size) == ("RGB", (36, 24)), name
        assert np.array_equal(np.asarray(first), np.asarray(second)), name


def test_stronger_settings_change_the_image_more():
    image = Image.fromarray(PIXELS)
    grid = robustness_grid()
    change = {name: np.abs(np.asarray(grid[name](image), dtype=float) - PIXELS).mean() for name in grid}
    assert change["jpeg_q95"] < change["jpeg_q50"] and change["blur_s0.5"] < change["blur_s3"]


def test_a_degradation_does_not_apply_exif_orientation():
    """Orientation is the loader's job (`load_rgb_image`): a degradation keeps the image as it was given."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    buffer = io.BytesIO()
    Image.fromarray(PIXELS).convert("L").save(buffer, "PNG", exif=exif)
    tagged = Image.open(buffer)
    assert all(degradation(tagged).size == (36, 24) for degradation in robustness_grid().values())


@pytest.mark.parametrize("sigma", [1, 2, 3])
def test_blur_sigma_is_the_standard_deviation_in_pixels(sigma):
    line = np.zeros((9, 61, 3), dtype=np.uint8)
    line[:, 30] = 255  # a vertical line: its blurred row profile is a Gaussian of std sigma
    profile = np.asarray(gaussian_blur(sigma)(Image.fromarray(line)), dtype=float)[4, :, 0]
    offsets = np.arange(61) - 30
    assert np.sqrt((profile * offsets**2).sum() / profile.sum()) == pytest.approx(sigma, rel=0.1)


def test_degrade_blurs_before_it_compresses():
    image = Image.fromarray(PIXELS)
    expected = np.asarray(jpeg(50)(gaussian_blur(2)(image)))
    assert np.array_equal(np.asarray(degrade(image, jpeg_quality=50, blur_sigma=2)), expected)
    assert not np.array_equal(np.asarray(gaussian_blur(2)(jpeg(50)(image))), expected)


def test_a_sixteen_bit_image_is_degraded_as_grey_not_white():
    grey = Image.fromarray(np.full((24, 36), 32768, dtype=np.uint16))
    for name, degradation in robustness_grid().items():
        assert abs(np.asarray(degradation(grey)).mean() - 128) <= 2, name


def test_an_image_jpeg_cannot_store_is_refused_before_the_blur(monkeypatch):
    import corruptions

    monkeypatch.setattr(corruptions, "JPEG_MAX_SIDE", 40)
    monkeypatch.setattr(corruptions, "gaussian_blur", lambda sigma: pytest.fail("blurred first"))
    with pytest.raises(ValueError, match="JPEG cannot store a 50×10 image"):
        degrade(Image.new("RGB", (50, 10)), jpeg_quality=90, blur_sigma=2)
