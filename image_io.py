"""Opening untrusted image files as 8-bit RGB, with errors that name the problem.

Training, evaluation, the scanner and the demo all read images through `load_rgb_image`, so every entry point
agrees on what a CMYK, 16-bit, palette, EXIF-rotated or animated file becomes. Alpha is dropped rather than
composited: compositing would rewrite the very pixels that carry a generator's fingerprint.
"""

import errno
import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import EpsImagePlugin, Image, ImageFile, ImageOps, UnidentifiedImageError

# PIL's own default (about 89 Mpx); larger images are refused as possible decompression bombs.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# Pillow decodes a few formats in Python (`Image.DECODERS`: 16-bit and plain-text PPM/PGM, QOI, RLE BMP, gzipped
# FITS, 16-bit SGI, DDS, BLP, MSP, XPM), at seconds a megapixel while holding the GIL (a 2100² 16-bit PPM: 12 s): a
# small file of one would occupy a server for minutes. Above this size (a 2048² image) they are refused.
MAX_PYTHON_DECODED_PIXELS = 2048 * 2048
# The most EXIF a JPEG can carry. Pillow copies each tag's data when it reads the block, so a larger one whose tags
# all point at the same bytes takes gigabytes (a 4 MB PNG of 1000 such tags: 3.8 GiB peak RSS without this limit).
MAX_EXIF_BYTES = 65_535
# Bytes per value of each TIFF field type that Pillow loads (TIFF 6.0, and BigTIFF's LONG8), to size what a directory
# entry declares; Pillow skips the others. The EXIF, GPS and Interop tags point at sub-directories it also reads.
TIFF_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}
TIFF_SUB_DIRECTORY_TAGS = (34665, 34853, 40965)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
ROWS_PER_CHUNK = 256  # rows converted at a time from a 16-bit or float image: its float64 copy stays small


def _decodable(image_format: str) -> bool:
    """Pillow opens and decodes this format itself: not a stub that only identifies a file (HDF5, GRIB, BUFR, WMF),
    nor MPEG's header reader, and EPS only when Ghostscript, which decodes it, is installed."""
    factory = Image.OPEN[image_format][0] if image_format in Image.OPEN else None
    if factory is None or image_format == "MPEG":
        return False
    if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile):
        return False
    return image_format != "EPS" or bool(EpsImagePlugin.has_ghostscript())


# The file extensions read as images wherever files are found in folders (the scanner, the converters, --train_dir):
# every one Pillow decodes itself. A video or data file it only identifies (.mpg, .h5, ...) would be read only to
# fail. Save-only formats (PDF) are not in Image.OPEN; MPO files open through the JPEG plugin.
IMAGE_EXTENSIONS = frozenset(
    ext.lower() for ext, image_format in Image.registered_extensions().items()
    if image_format == "MPO" or _decodable(image_format)
)


class ImageLoadError(ValueError):
    """An input that cannot be turned into an RGB image; the message says which and why, and `reason` why alone (for
    reports that name the file in a column of their own)."""

    def __init__(self, message: str, reason: str | None = None):  # one argument too: DataLoader re-raises with it
        super().__init__(message)
        self.reason = message if reason is None else reason


def _refused(name: object, reason: str) -> ImageLoadError:
    """The `ImageLoadError` for input `name` (a path, or "image") and why it is refused."""
    return ImageLoadError(f"{name}: {reason}", reason)


# A [0, 1] float image a resampling overshoot (bicubic ringing) or a rounding pushed just past 1 was read as a 0-255
# image: a black frame. A 0-255 image whose brightest pixel is under 2 is a black frame either way.
FLOAT_UNIT_OVERSHOOT = 2.0


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; 16-bit and float images are rescaled instead of clipped to white.

    A 16-bit mode (`I;16*`) always spans 0-65535, so one pixel value gives one grey in every image; so does a PGM
    of more than 8 bits, which Pillow opens as mode `I` already scaled to 0-65535 from its maxval. Otherwise modes
    `I` (32-bit integers) and `F` (floats) say nothing about their range: values up to 1 (`F` only), 255 or else
    65535 are taken as the full range, judged from the image's largest finite value; a float image peaking a little
    over 1 (up to `FLOAT_UNIT_OVERSHOOT`) is a [0, 1] image clipped at 1. NaN becomes black, +inf white.
    An alpha channel or a transparent colour is dropped, not composited.
    """
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image)  # its own 2 or 4 bytes a pixel; the float64 arithmetic below goes by chunks
        floats = values.dtype.kind == "f"
        peak = float(values.max(initial=0, where=np.isfinite(values)) if floats else values.max(initial=0))
        if image.mode.startswith("I;16") or (image.mode == "I" and image.format == "PPM"):
            top = 65535.0
        elif image.mode == "F" and peak <= FLOAT_UNIT_OVERSHOOT:
            top = 1.0
        else:
            top = 255.0 if peak <= 255 else 65535.0
        grey = np.empty(values.shape, dtype=np.uint8)
        for start in range(0, len(values), ROWS_PER_CHUNK):
            rows = values[start : start + ROWS_PER_CHUNK].astype(np.float64)
            if floats:  # one NaN pixel would otherwise turn the whole cast into garbage
                rows = np.nan_to_num(rows, nan=0.0, posinf=top, neginf=0.0)
            grey[start : start + ROWS_PER_CHUNK] = np.clip(rows / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(grey, mode="L")
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    rgb = image.convert("RGB")
    # Pillow keeps a palette or grey image's transparent colour (tRNS, a GIF's transparent index) as an RGB key, which
    # CLIP's image processor would composite on white: dropped, like an alpha channel.
    rgb.info.pop("transparency", None)
    return rgb


def load_rgb_image(source: "str | Path | bytes | dict | Image.Image", max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open a path, raw bytes, PIL image or undecoded `datasets.Image` value (`{"bytes", "path"}`) as 8-bit RGB:
    first frame of animations, EXIF orientation applied.

    Raises `ImageLoadError` for missing (None), empty, truncated, undecodable or over-`max_pixels` inputs.
    """
    if source is None:
        raise _refused("image", "missing (None)")
    if isinstance(source, dict):  # stored bytes first; a path when the dataset keeps only paths
        stored = source.get("bytes")
        if stored is None and not source.get("path"):
            raise _refused("image", "missing (neither bytes nor a path)")
        return load_rgb_image(stored if stored is not None else source["path"], max_pixels)
    if isinstance(source, Image.Image):
        return _to_upright_rgb(source, "image", max_pixels, owned=False)
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            if not path.is_file():  # opening a FIFO or a device would block or never end: refused like a folder
                raise _refused(path, _not_a_file(path))
            if path.stat().st_size == 0:
                raise _refused(path, "empty file (0 bytes)")
            handle = path.open("rb")
        except OSError as error:  # no permission to read it or to search a folder on its way, a name too long
            raise _refused(path, f"cannot be read ({error.strerror or error})") from None
        # Decoded from the open file, not read whole first: Pillow reads what the header says it needs, so a
        # non-image (a video named .jpg, say) is refused without its size in memory.
        with handle:
            return _to_upright_rgb(_open(handle, str(path)), str(path), max_pixels, owned=True)
    if not isinstance(source, (bytes, bytearray, memoryview)):
        raise _refused("image", f"a {type(source).__name__} is not an image, bytes or a path")
    if not len(source):
        raise _refused("image", "empty file (0 bytes)")
    return _to_upright_rgb(_open(io.BytesIO(source), "image"), "image", max_pixels, owned=True)


def _not_a_file(path: Path) -> str:
    """What `path`, which is no regular file, is instead."""
    try:
        path.stat()
    except OSError as error:  # Path.exists() would call a symlink loop or an unsearchable folder missing too
        if path.is_symlink():
            return f"a broken symbolic link ({error.strerror or error})"
        return "no such file" if error.errno == errno.ENOENT else f"cannot be read ({error.strerror or error})"
    if not path.is_dir():
        return "not a regular file"
    try:  # a folder reaches an image loader when it cannot be listed (inference.find_images gives it its row)
        os.scandir(path).close()
    except OSError as error:
        return f"a folder that cannot be listed ({error.strerror or error})"
    return "a folder"


def tiff_directory_bytes(stream: "io.BufferedIOBase") -> int:
    """The bytes of tag data that a TIFF in `stream` declares in the directories Pillow reads when it opens and
    decodes a first page: the first directory and its EXIF, GPS and Interop sub-directories (0 for another format).
    Counted as Pillow reads them: tags of the types it loads whose data lie inside the file. In a well-formed file
    that data is stored once, so it adds up to less than the file's size; tags that all point at one large block
    declare far more, and Pillow, which copies each tag's data, would take that much memory (a 4 MB file of 1000
    such tags: 7.5 GiB peak RSS without this check)."""
    start = stream.tell()
    try:
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        header = stream.read(16)
        order = {b"II": "<", b"MM": ">"}.get(header[:2])
        if order is None or len(header) < 16:
            return 0
        version = struct.unpack(order + "H", header[2:4])[0]
        if version == 42:  # classic TIFF: 2-byte entry count, 12-byte entries, 4 bytes held inline
            first, count_format, entry_format, inline = struct.unpack(order + "I", header[4:8])[0], "H", "HHI4s", 4
        elif version == 43:  # BigTIFF: 8-byte entry count, 20-byte entries, 8 bytes held inline
            first, count_format, entry_format, inline = struct.unpack(order + "Q", header[8:16])[0], "Q", "HHQ8s", 8
        else:
            return 0
        count_size, entry_size = struct.calcsize(order + count_format), struct.calcsize(order + entry_format)
        declared, directories, seen = 0, [first], set()
        while directories:
            offset = directories.pop()
            if offset in seen or offset + count_size > size:
                continue
            seen.add(offset)
            stream.seek(offset)
            entries = struct.unpack(order + count_format, stream.read(count_size))[0]
            for _ in range(min(entries, (size - offset) // entry_size)):  # no more than the file can hold
                entry = stream.read(entry_size)
                if len(entry) < entry_size:
                    break
                tag, field_type, values, value = struct.unpack(order + entry_format, entry)
                type_bytes = TIFF_TYPE_BYTES.get(field_type)
                if type_bytes is None:  # a type Pillow skips
                    continue
                length = type_bytes * values
                if length <= inline:  # an offset held inline: one value of 4 bytes, or of 8 in a BigTIFF
                    if tag in TIFF_SUB_DIRECTORY_TAGS and values and type_bytes in (4, 8) and type_bytes <= inline:
                        directories.append(struct.unpack(order + ("I" if type_bytes == 4 else "Q"), value[:type_bytes])[0])
                    continue
                data_offset = struct.unpack(order + ("I" if inline == 4 else "Q"), value)[0]
                if data_offset + length <= size:  # Pillow drops a tag whose data run past the end
                    declared += length
        return declared
    finally:
        stream.seek(start)


def _open(stream: "io.BufferedIOBase", name: str) -> Image.Image:
    """Pillow's lazy open (the header only), its errors as `ImageLoadError`."""
    declared = tiff_directory_bytes(stream)  # 0 for any other format
    if declared:
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        if declared > size:
            raise _refused(name, f"a TIFF directory that declares {declared} bytes of tag data in a file of "
                                 f"{size} (opening it could take that much memory)")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit; `max_pixels` decides in `_to_upright_rgb` (it may be higher or lower).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(stream)
    except Image.DecompressionBombError:  # over twice Pillow's limit: refused whatever max_pixels says
        raise _refused(
            name, f"refused, over twice Pillow's {Image.MAX_IMAGE_PIXELS} pixel limit (decompression-bomb check)"
        ) from None
    except UnidentifiedImageError:
        raise _refused(name, "not a recognised image file") from None
    except ValueError as error:
        # Pillow refuses a compressed text chunk that inflates past PngImagePlugin.MAX_TEXT_CHUNK (1 MB), a guard
        # against decompression bombs. Generators store prompts and whole workflows in such chunks; the pixels do
        # not need them, so the PNG is opened again without its text chunks.
        without_text = png_without_text(stream)
        if without_text is not None:
            return _open(without_text, name)
        raise _refused(name, f"truncated or corrupt image data ({error})") from None
    except (OSError, SyntaxError) as error:  # header cut short or malformed
        raise _refused(name, f"truncated or corrupt image data ({error})") from None


def png_without_text(stream: "io.BufferedIOBase") -> io.BytesIO | None:
    """The PNG in `stream` as a copy in memory without its text chunks (`tEXt`, `zTXt`, `iTXt`: metadata, never
    pixels), or None when `stream` holds no PNG or holds no text chunk to leave out."""
    stream.seek(0)
    if stream.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
        return None
    copy, dropped = io.BytesIO(PNG_SIGNATURE), False
    copy.seek(0, io.SEEK_END)
    while len(header := stream.read(8)) == 8:  # length (4 bytes, big-endian) and type; then data and CRC
        kind = header[4:]
        rest = stream.read(int.from_bytes(header[:4], "big") + 4)
        if kind in PNG_TEXT_CHUNKS:
            dropped = True
        else:
            copy.write(header + rest)
        if kind == b"IEND":
            break
    copy.seek(0)
    return copy if dropped else None


def check_exif_size(image: Image.Image, name: str) -> None:
    """`ImageLoadError` for an EXIF block over `MAX_EXIF_BYTES`, before anything parses it."""
    exif_bytes = len(image.info.get("exif") or b"")
    if exif_bytes > MAX_EXIF_BYTES:
        raise _refused(name, f"an EXIF block of {exif_bytes} bytes, over the {MAX_EXIF_BYTES} a JPEG can carry "
                             "(reading it could take gigabytes)")


def _to_upright_rgb(image: Image.Image, name: str, max_pixels: int, owned: bool) -> Image.Image:
    """Decode the first frame, apply the EXIF orientation (in place when `owned`: no full-size copy of an upright
    image; a caller's image is transposed into a copy) and convert to RGB."""
    width, height = image.size
    if width * height > max_pixels:
        raise _refused(name, f"{width}x{height} is larger than the {max_pixels} pixel limit")
    if width * height > MAX_PYTHON_DECODED_PIXELS and any(tile.codec_name in Image.DECODERS for tile in image.tile):
        raise _refused(name, f"a {width}x{height} {image.format} image, which Pillow decodes slowly (in Python): "
                             f"refused above {MAX_PYTHON_DECODED_PIXELS} pixels")
    try:
        # Animated GIF/PNG/WebP: back to the first frame if a caller moved on. Only then: Pillow numbers a PSD's
        # frames (its layers) from 1 and holds the flattened image right after opening, where seek(0) would fail.
        first_frame = getattr(image, "_min_frame", 0)
        if image.tell() != first_frame:
            image.seek(first_frame)
        image.load()
        check_exif_size(image, name)  # after load(): a PNG's eXIf chunk after the image data is read only then
        if owned:
            ImageOps.exif_transpose(image, in_place=True)
        else:
            image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except (MemoryError, ImageLoadError):
        raise
    except Exception as error:  # noqa: BLE001 - a corrupt file makes Pillow's decoders and EXIF parser raise anything
        raise _refused(name, f"truncated or corrupt image data ({type(error).__name__}: {error})") from None
