"""Opening untrusted image files as 8-bit RGB, with errors that name the problem.

Training, evaluation, the scanner and the demo all read images through `load_rgb_image`, so every entry point
agrees on what a CMYK, 16-bit, palette, EXIF-rotated or animated file becomes. Alpha is dropped rather than
composited: compositing would rewrite the very pixels that carry a generator's fingerprint.
"""

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# PIL's own default (about 89 Mpx); larger images are refused as possible decompression bombs.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


class ImageLoadError(ValueError):
    """An input that cannot be turned into an RGB image; the message says why."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; 16-bit and float images are rescaled instead of clipped to white.

    A 16-bit mode (`I;16*`) always spans 0-65535, so one pixel value gives one grey in every image. Modes `I`
    (32-bit integers) and `F` (floats) say nothing about their range: values up to 1 (`F` only), 255 or else 65535
    are taken as the full range, judged from the image's maximum.
    """
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = values.max(initial=0)
        if image.mode.startswith("I;16"):
            top = 65535.0
        elif image.mode == "F" and peak <= 1.0:
            top = 1.0
        else:
            top = 255.0 if peak <= 255 else 65535.0
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_rgb_image(source: "str | Path | bytes | dict | Image.Image", max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open a path, raw bytes, PIL image or undecoded `datasets.Image` value (`{"bytes", "path"}`) as 8-bit RGB:
    first frame of animations, EXIF orientation applied.

    Raises `ImageLoadError` for missing (None), empty, truncated, undecodable or over-`max_pixels` inputs.
    """
    if source is None:
        raise ImageLoadError("image: missing (None)")
    if isinstance(source, dict):  # stored bytes first; a path when the dataset keeps only paths
        stored = source.get("bytes")
        if stored is None and not source.get("path"):
            raise ImageLoadError("image: missing (neither bytes nor a path)")
        return load_rgb_image(stored if stored is not None else source["path"], max_pixels)
    if not isinstance(source, (str, Path, bytes, bytearray, memoryview, Image.Image)):
        raise ImageLoadError(f"image: a {type(source).__name__} is not an image, bytes or a path")
    name = str(source) if isinstance(source, (str, Path)) else "image"
    if isinstance(source, Image.Image):
        image = source
    else:
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_file():
                raise ImageLoadError(f"{name}: no such file")
            data = path.read_bytes()
        else:
            data = bytes(source)
        if not data:
            raise ImageLoadError(f"{name}: empty file (0 bytes)")
        try:
            with warnings.catch_warnings():
                # Pillow warns above its own limit; `max_pixels` decides below (it may be higher or lower).
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:  # over twice Pillow's limit: refused whatever max_pixels says
            raise ImageLoadError(
                f"{name}: refused, over twice Pillow's {Image.MAX_IMAGE_PIXELS} pixel limit (decompression-bomb check)"
            ) from None
        except UnidentifiedImageError:
            raise ImageLoadError(f"{name}: not a recognised image file") from None
        except (OSError, SyntaxError, ValueError) as error:  # header cut short or malformed
            raise ImageLoadError(f"{name}: truncated or corrupt image data ({error})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageLoadError(f"{name}: {width}x{height} is larger than the {max_pixels} pixel limit")
    try:
        image.seek(0)  # animated GIF/PNG/WebP: the first frame
        image.load()
        if isinstance(source, Image.Image):
            image = ImageOps.exif_transpose(image)  # a copy: the caller's image stays as it was
        else:
            ImageOps.exif_transpose(image, in_place=True)  # the image is ours: no full-size copy when upright
        return to_rgb(image)
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - a corrupt file makes Pillow's decoders and EXIF parser raise anything
        raise ImageLoadError(f"{name}: truncated or corrupt image data ({type(error).__name__}: {error})") from None
