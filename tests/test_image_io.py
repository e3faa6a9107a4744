"""load_rgb_image: every odd input becomes 8-bit RGB or a clear ImageLoadError."""

import io
import struct
import zlib
import os
import tracemalloc
from pathlib import Path

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


@pytest.mark.parametrize("mode", ["L", "P", "RGB"])
def test_a_transparent_colour_is_dropped_not_kept_as_a_key(mode):
    """Pillow keeps tRNS as an RGB key that CLIP's processor composites on white; the colour's own pixels stay."""
    source = RGB.convert(mode)
    key = source.getpixel((0, 0))
    image = load_rgb_image(png_bytes(source, transparency=key))
    assert image.mode == "RGB" and "transparency" not in image.info
    assert image.getpixel((0, 0)) == source.convert("RGB").getpixel((0, 0))


def test_cmyk_jpeg_becomes_rgb():
    assert load_rgb_image(png_bytes(RGB.convert("CMYK"), "JPEG")).mode == "RGB"


def test_sixteen_bit_is_rescaled_not_clipped():
    values = np.linspace(0, 65535, 30 * 20).reshape(30, 20).astype(np.uint16)
    image = np.asarray(load_rgb_image(png_bytes(Image.fromarray(values))))
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 255
    assert 100 < image[15, 10, 0] < 160  # mid-grey, not white


def test_sixteen_bit_values_map_to_one_grey_in_every_image():
    # A dark 16-bit image is not mistaken for an 8-bit one: 200/65535 stays darker than 20000/65535 elsewhere.
    dark, light = (np.full((4, 4), value, dtype=np.uint16) for value in (200, 20000))
    dark_rgb, light_rgb = (np.asarray(load_rgb_image(png_bytes(Image.fromarray(v))))[0, 0, 0] for v in (dark, light))
    assert Image.open(io.BytesIO(png_bytes(Image.fromarray(dark)))).mode.startswith("I;16")
    assert dark_rgb == round(200 / 65535 * 255) and light_rgb == round(20000 / 65535 * 255)


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


def jpeg_with_corrupt_exif() -> bytes:
    """A JPEG whose EXIF block has a retagged entry and a next-IFD offset past its end (Pillow raises struct.error)."""
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "cam"
    data = bytearray(png_bytes(Image.new("RGB", (8, 8)), "JPEG", exif=exif))
    tiff_header = data.index(b"Exif\x00\x00") + 6
    data[tiff_header + 11], data[tiff_header + 33] = 0x25, 0xC1
    return bytes(data)


def png_with_short_header() -> bytes:
    data = bytearray(png_bytes(RGB))
    data[8:12] = (5).to_bytes(4, "big")  # IHDR chunk length 5 instead of 13
    return bytes(data)


@pytest.mark.parametrize("data", [jpeg_with_corrupt_exif(), png_with_short_header()], ids=["exif", "png-header"])
def test_malformed_metadata_gets_a_clear_error(data):
    with pytest.raises(ImageLoadError, match="corrupt"):
        load_rgb_image(data)


def test_pixel_limit_may_exceed_pillows(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 20×30 = 600: Pillow only warns
    assert load_rgb_image(png_bytes(RGB), max_pixels=1000).size == (20, 30)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 250)  # over twice Pillow's limit: Pillow refuses
    with pytest.raises(ImageLoadError, match="decompression-bomb"):
        load_rgb_image(png_bytes(RGB), max_pixels=1000)


def test_broken_symbolic_links_are_named_so(tmp_path):
    """A dangling link and a link loop are not reported as missing files (the folder reader says the same)."""
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(ImageLoadError, match=r"dangling.png: a broken symbolic link \(No such file or directory\)"):
        load_rgb_image(tmp_path / "dangling.png")
    with pytest.raises(ImageLoadError, match=r"a.png: a broken symbolic link \(Too many levels of symbolic links\)"):
        load_rgb_image(tmp_path / "a.png")


def test_missing_file_and_pixel_limit(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_rgb_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="folder.png: a folder"):
        load_rgb_image((tmp_path / "folder.png").mkdir() or tmp_path / "folder.png")
    os.mkfifo(tmp_path / "fifo.png")  # opening it would wait for a writer forever
    with pytest.raises(ImageLoadError, match="fifo.png: not a regular file"):
        load_rgb_image(tmp_path / "fifo.png")
    with pytest.raises(ImageLoadError, match="pixel limit"):
        load_rgb_image(png_bytes(RGB), max_pixels=100)


def test_float_and_32_bit_images_use_their_full_range():
    ramp = np.linspace(0, 1, 30 * 20, dtype=np.float32).reshape(30, 20)
    as_float = np.asarray(load_rgb_image(Image.fromarray(ramp)))  # mode F, values in [0, 1]: 1.0 is white
    assert as_float[0, 0, 0] == 0 and as_float[-1, -1, 0] == 255 and 120 < as_float[15, 10, 0] < 136
    as_int = np.asarray(load_rgb_image(Image.fromarray((ramp * 255).round().astype(np.int32))))  # mode I, 0-255
    assert as_int[-1, -1, 0] == 255 and 120 < as_int[15, 10, 0] < 136


def test_an_animated_image_given_at_a_later_frame_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    opened = Image.open(io.BytesIO(png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])))
    opened.seek(1)
    assert load_rgb_image(opened).getpixel((0, 0))[0] > 200


def test_a_large_file_that_is_no_image_is_refused_without_reading_it_whole(tmp_path):
    """The file was read into memory before Pillow saw its header: a video named .jpg cost its size per worker."""
    path = tmp_path / "video.jpg"
    with path.open("wb") as handle:
        handle.truncate(64 * 2**20)  # 64 MiB of zeros (sparse: no disk used)
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError, match="not a recognised image file"):
            load_rgb_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_an_image_file_is_closed_once_loaded(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (6, 4), (1, 2, 3)).save(path)  # returned as opened (no conversion): it could hold the file
    open_files = len(os.listdir("/proc/self/fd"))
    image = load_rgb_image(path)
    assert len(os.listdir("/proc/self/fd")) == open_files  # the handle is closed, not left to the garbage collector
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (1, 2, 3)


def psd_bytes(pixels: np.ndarray) -> bytes:
    """A flattened 8-bit RGB Photoshop file, written by hand (Pillow reads PSD but cannot save it): header, three
    empty sections (colour mode data, image resources, layers), then raw planar channels."""
    height, width, channels = pixels.shape
    header = b"8BPS" + (1).to_bytes(2, "big") + bytes(6) + channels.to_bytes(2, "big")
    header += height.to_bytes(4, "big") + width.to_bytes(4, "big") + (8).to_bytes(2, "big") + (3).to_bytes(2, "big")
    return header + bytes(12) + bytes(2) + pixels.transpose(2, 0, 1).tobytes()


def test_a_photoshop_file_gives_its_flattened_image(tmp_path):
    # Pillow numbers a PSD's frames from 1: seeking to frame 0 "for animations" refused every PSD as corrupt
    pixels = np.asarray(RGB)
    path = tmp_path / "layered.psd"
    path.write_bytes(psd_bytes(pixels))
    assert np.array_equal(np.asarray(load_rgb_image(path)), pixels)
    assert np.array_equal(np.asarray(load_rgb_image(Image.open(path))), pixels)


def test_non_finite_float_pixels_do_not_blacken_the_image():
    values = np.full((8, 8), 0.8, dtype=np.float32)
    values[0, 0], values[0, 1], values[0, 2] = np.nan, np.inf, -np.inf
    rgb = np.asarray(load_rgb_image(Image.fromarray(values)))[..., 0]
    assert rgb[0, 0] == 0 and rgb[0, 1] == 255 and rgb[0, 2] == 0  # NaN black, +inf white, -inf black
    assert (rgb.ravel()[3:] == 204).all()  # 0.8 of the range, as without them


def test_32_bit_integers_above_255_are_read_as_a_16_bit_range():
    ramp = np.linspace(0, 65535, 30 * 20).reshape(30, 20).round().astype(np.int32)
    image = Image.fromarray(ramp)
    assert image.mode == "I"
    grey = np.asarray(load_rgb_image(image))[..., 0]
    assert grey[0, 0] == 0 and grey[-1, -1] == 255 and 120 < grey[15, 10] < 136  # not clipped to white


@pytest.mark.parametrize("dtype", ["<u2", ">u2"])
def test_every_16_bit_mode_maps_a_dark_value_to_dark_grey(dtype):
    image = Image.fromarray(np.full((4, 4), 200, dtype=dtype))
    assert image.mode.startswith("I;16"), image.mode
    assert np.asarray(load_rgb_image(image))[0, 0, 0] == round(200 / 65535 * 255)


def test_an_image_of_exactly_the_pixel_limit_is_accepted():
    assert load_rgb_image(png_bytes(Image.new("RGB", (10, 10))), max_pixels=100).size == (10, 10)
    with pytest.raises(ImageLoadError, match="pixel limit"):
        load_rgb_image(png_bytes(Image.new("RGB", (10, 11))), max_pixels=100)


def test_a_large_image_pillow_decodes_in_python_is_refused_before_decoding():
    """A 320 KB gzipped FITS or a 19 MB QOI took a minute of a server's CPU (and the GIL) to decode."""
    import struct

    from image_io import MAX_PYTHON_DECODED_PIXELS

    def qoi(width: int, height: int) -> bytes:  # a header and an end marker: enough for Pillow to open it
        return b"qoif" + struct.pack(">IIBB", width, height, 3, 0) + b"\x00" * 7 + b"\x01"

    with pytest.raises(ImageLoadError, match="QOI image, which Pillow decodes slowly"):
        load_rgb_image(qoi(4096, 2048))
    small = Image.new("RGB", (64, 48), (10, 200, 30))
    assert 64 * 48 < MAX_PYTHON_DECODED_PIXELS
    assert np.array_equal(np.asarray(load_rgb_image(png_bytes(small, "QOI"))), np.asarray(small))


def test_an_exif_block_larger_than_a_jpeg_can_carry_is_refused():
    """Tags that all point at one large block made Pillow copy it once per tag: a 4 MB PNG took 3.8 GiB."""
    big = png_bytes(Image.new("RGB", (8, 8)), exif=b"MM\x00*\x00\x00\x00\x08" + b"\x00" * 70_000)
    with pytest.raises(ImageLoadError, match="an EXIF block of 7.... bytes, over the 65535"):
        load_rgb_image(big)
    assert load_rgb_image(png_bytes(Image.new("RGB", (8, 8)), exif=Image.Exif().tobytes())).size == (8, 8)


def test_wide_range_images_are_converted_in_chunks_with_the_same_arithmetic():
    """The whole image as float64 (and its temporaries) took 2.3 GB for a 174 KB 16-bit PNG of 89 Mpx."""
    from image_io import ROWS_PER_CHUNK

    rng = np.random.default_rng(0)
    for values in (rng.integers(0, 65536, (2 * ROWS_PER_CHUNK + 3, 5)).astype("<u2"),
                   np.where(rng.random((ROWS_PER_CHUNK + 1, 4)) < 0.1, np.nan, rng.random((ROWS_PER_CHUNK + 1, 4)))
                   .astype(np.float32)):
        top = 65535.0 if values.dtype.kind == "u" else 1.0
        expected = np.clip(np.nan_to_num(values.astype(np.float64), nan=0.0) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        assert np.array_equal(np.asarray(load_rgb_image(Image.fromarray(values)))[..., 0], expected)


def test_converting_a_16_bit_image_takes_less_memory_than_one_float64_copy():
    import tracemalloc

    image = Image.fromarray(np.random.default_rng(0).integers(0, 65536, (2000, 2000)).astype("<u2"))
    tracemalloc.start()
    load_rgb_image(image)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2000 * 2000 * 8, f"{peak / 2**20:.0f} MiB"  # the whole-image float64 copy alone is 30.5 MiB


def test_an_exif_chunk_after_the_image_data_is_checked_too():
    """Pillow reads a PNG's chunks after IDAT only when it decodes: the size check before decoding saw none."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    plain = png_bytes(Image.new("RGB", (8, 8)))
    end = plain.rindex(b"IEND") - 4
    late = plain[:end] + chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08" + b"\x00" * 70_000) + plain[end:]
    with pytest.raises(ImageLoadError, match="an EXIF block of 700.. bytes, over the 65535"):
        load_rgb_image(late)


def tiff_with_shared_tag_data(tags: int, block: int, byte_order: str = "<", in_exif: bool = False,
                              extra: tuple = ()) -> bytes:
    """An 8×8 grey TIFF whose first directory (or, `in_exif`, its EXIF sub-directory) also holds `tags` private tags
    that all point at one `block`-byte block: Pillow copies the block once per tag. `extra`: more first-directory
    entries (tag, type, count, value)."""
    o = byte_order
    image_tags = [(256, 3, 1, 8), (257, 3, 1, 8), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, 1, "pixels"),
                  (277, 3, 1, 1), (278, 3, 1, 8), (279, 4, 1, 64), *extra] + ([(34665, 4, 1, "exif")] if in_exif else [])
    shared = [(40000 + i, 7, block, "block") for i in range(tags)]
    first = image_tags + ([] if in_exif else shared)
    exif = shared if in_exif else []
    first_at = 8
    exif_at = first_at + 2 + 12 * len(first) + 4
    block_at = exif_at + (2 + 12 * len(exif) + 4 if exif else 0)
    places = {"pixels": block_at + block, "exif": exif_at, "block": block_at}

    def directory(entries: list) -> bytes:
        packed = struct.pack(o + "H", len(entries))
        for tag, kind, count, value in entries:
            value = places.get(value, value)
            field = struct.pack(o + "HH", value, 0) if kind == 3 and count == 1 else struct.pack(o + "I", value)
            packed += struct.pack(o + "HHI", tag, kind, count) + field
        return packed + b"\x00" * 4

    header = (b"II*\x00" if o == "<" else b"MM\x00*") + struct.pack(o + "I", first_at)
    return header + directory(first) + (directory(exif) if exif else b"") + b"\x00" * block + b"\x80" * 64


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_a_tiff_directory_declaring_more_data_than_its_file_is_refused_before_pillow_opens_it(byte_order):
    """A 4 MB TIFF whose 1000 tags share one 4 MB block took 7.5 GiB inside Pillow's open."""
    assert load_rgb_image(tiff_with_shared_tag_data(1, 1000, byte_order)).size == (8, 8)  # its data is in the file
    with pytest.raises(ImageLoadError, match="a TIFF directory that declares 100000 bytes of tag data in a file of"):
        load_rgb_image(tiff_with_shared_tag_data(100, 1000, byte_order))
    with pytest.raises(ImageLoadError, match="declares 100000 bytes"):  # the same tags in the EXIF sub-directory
        load_rgb_image(tiff_with_shared_tag_data(100, 1000, byte_order, in_exif=True))


def test_tags_pillow_skips_do_not_make_a_tiff_refused():
    """Counted, an unknown type or data past the end of the file refused files that Pillow opens at no cost."""
    for extra in ((50000, 99, 2**31, 0), (50001, 7, 10**6, 100), (50002, 17, 10**6, 100)):
        assert load_rgb_image(tiff_with_shared_tag_data(0, 0, extra=(extra,))).size == (8, 8), extra
    # an EXIF pointer of an 8-byte type and no values, in a classic TIFF: read as an 8-byte offset from a 4-byte
    # field, it raised struct.error out of load_rgb_image
    assert load_rgb_image(tiff_with_shared_tag_data(0, 0, extra=((34665, 16, 0, 0),))).size == (8, 8)


def test_a_path_the_file_system_refuses_is_an_image_load_error(tmp_path, monkeypatch):
    """A name too long, or a file or folder without read permission, raised a bare OSError (a traceback in training,
    a row repeating the path in the scanner)."""
    with pytest.raises(ImageLoadError, match=r"cannot be read \(File name too long\)"):
        load_rgb_image(tmp_path / ("a" * 300 + ".png"))
    image = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(image)

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refused)  # as for a user without read permission (tests may run as root)
    with pytest.raises(ImageLoadError, match=r"a.png: cannot be read \(Permission denied\)"):
        load_rgb_image(image)


@pytest.mark.parametrize("save_args", [{}, {"compression": "tiff_lzw"}, {"compression": "tiff_adobe_deflate"},
                                       {"exif": b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00"},
                                       {"icc_profile": b"\x00" * 3000}, {"big_tiff": True, "icc_profile": b"\x00" * 3000},
                                       {"save_all": True}])
def test_tiffs_as_pillow_writes_them_declare_no_more_than_their_size(save_args):
    from image_io import tiff_directory_bytes

    frames = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 30, 3), dtype=np.uint8)) for i in range(3)]
    extra = {"append_images": frames[1:]} if save_args.get("save_all") else {}
    data = png_bytes(frames[0], "TIFF", **save_args, **extra)
    assert 0 < tiff_directory_bytes(io.BytesIO(data)) <= len(data)
    assert np.array_equal(np.asarray(load_rgb_image(data)), np.asarray(frames[0]))


@pytest.mark.parametrize("maxval", [1023, 65535])
def test_a_pgm_of_more_than_8_bits_maps_a_dark_value_to_dark_grey(maxval):
    # Pillow opens it as mode I, scaled to 0-65535 from maxval: a dark image must not be read as an 8-bit bright one
    pgm = f"P2\n4 4\n{maxval}\n".encode() + b" ".join([b"3"] * 16) + b"\n"
    assert Image.open(io.BytesIO(pgm)).mode == "I"
    assert np.asarray(load_rgb_image(pgm))[0, 0, 0] == round(3 / maxval * 255)  # 1 (maxval 1023) or 0, not 3


def test_a_png_whose_compressed_metadata_inflates_past_pillows_text_limit_gives_its_pixels():
    from PIL import PngImagePlugin

    workflow = ('{"nodes": [' + ", ".join(f'{{"id": {i}, "prompt": "a photo of a cat"}}' for i in range(60_000)) + "]}")
    assert len(workflow) > PngImagePlugin.MAX_TEXT_CHUNK  # as a generator's saved workflow can be
    info = PngImagePlugin.PngInfo()
    info.add_text("workflow", workflow, zip=True)
    data = png_bytes(RGB, pnginfo=info)
    with pytest.raises(ValueError, match="MAX_TEXT_CHUNK"):  # what Pillow alone does with it
        Image.open(io.BytesIO(data))
    assert np.array_equal(np.asarray(load_rgb_image(data)), np.asarray(RGB))
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):  # cut short, it is still refused
        load_rgb_image(data[: len(data) - 200])


@pytest.mark.parametrize("peak", [1.0000001, 1.03, 1.9])
def test_a_float_image_overshooting_one_a_little_is_a_unit_range_image(peak):
    # was: any value over 1.0 made the image a 0-255 one, divided by 255: a black frame
    values = np.full((8, 8), 0.5, dtype=np.float32)
    values[0, 0] = peak
    rgb = np.asarray(load_rgb_image(Image.fromarray(values)))
    assert rgb[1, 1, 0] == 128 and rgb[0, 0, 0] == 255
    values[0, 0] = 2.5  # beyond the overshoot: a 0-255 image
    assert np.asarray(load_rgb_image(Image.fromarray(values)))[1, 1, 0] == 1
