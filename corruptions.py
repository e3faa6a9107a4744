"""Image degradations of the robustness protocol (JPEG re-compression, Gaussian blur), applied to test images
before preprocessing.

Each takes any PIL image and returns an RGB one of the same size (what `image_io.load_rgb_image` gives the rest of
the pipeline); JPEG cannot store alpha or 16 bits and PIL cannot blur a palette, so other modes go through RGB first.
"""

import io
from collections.abc import Callable

from PIL import Image, ImageFilter

from image_io import to_rgb

JPEG_QUALITIES = (95, 90, 75, 60, 50)
BLUR_SIGMAS = (0.5, 1, 2, 3)
JPEG_MAX_SIDE = 65500  # the JPEG format's limit (libjpeg)


def jpeg(quality: int) -> Callable[[Image.Image], Image.Image]:
    """Re-encode as JPEG at `quality` (the compression a photo gets when it is shared)."""

    def apply(image: Image.Image) -> Image.Image:
        check_jpeg_size(image)
        buffer = io.BytesIO()
        to_rgb(image).save(buffer, format="JPEG", quality=quality)
        return Image.open(buffer).convert("RGB")

    return apply


def check_jpeg_size(image: Image.Image) -> None:
    """`ValueError` for an image JPEG cannot store."""
    if max(image.size) > JPEG_MAX_SIDE:
        raise ValueError(f"JPEG cannot store a {image.width}×{image.height} image (at most {JPEG_MAX_SIDE} px a side)")


def gaussian_blur(sigma: float) -> Callable[[Image.Image], Image.Image]:
    """Gaussian blur with standard deviation `sigma` pixels (PIL's GaussianBlur radius is the std)."""
    return lambda image: to_rgb(image).filter(ImageFilter.GaussianBlur(radius=sigma))


def degrade(image: Image.Image, jpeg_quality: int | None = None, blur_sigma: float = 0.0) -> Image.Image:
    """Gaussian blur (σ in pixels) then JPEG re-compression, as the demo's robustness preview combines them.

    Blur comes first because that is the order of a real pipeline: an edit, then a lossy upload.
    """
    if jpeg_quality is not None:
        check_jpeg_size(image)  # before the blur, which takes seconds on an image this large
    if blur_sigma > 0:
        image = gaussian_blur(blur_sigma)(image)
    if jpeg_quality is not None:
        image = jpeg(int(jpeg_quality))(image)
    return image


def robustness_grid() -> dict[str, Callable[[Image.Image], Image.Image]]:
    """Every degradation of the protocol, keyed by a readable name such as `jpeg_q75` or `blur_s2`."""
    grid = {f"jpeg_q{q}": jpeg(q) for q in JPEG_QUALITIES}
    grid.update({f"blur_s{s:g}": gaussian_blur(s) for s in BLUR_SIGMAS})
    return grid
