"""corruptions: the robustness grid degrades any image into an RGB one of the same size, deterministically."""

import io
import numpy as np
import pytest
from PIL import Image

from corruptions import robustness_grid

PIXELS = np.random.default_rng(0).integers(0, 256, (24, 36, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16"])
def test_every_degradation_gives_rgb_of_the_same_size(mode):
    image = Image.fromarray(PIXELS).convert(mode) if mode != "I;16" else Image.fromarray(PIXELS[..., 0].astype(np.uint16) * 257)
    for name, degrade in robustness_grid().items():
        first, second = degrade(image), degrade(image)
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
    assert all(degrade(tagged).size == (36, 24) for degrade in robustness_grid().values())
