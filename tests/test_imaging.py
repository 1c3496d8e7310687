"""Tests for p2w_search.imaging: every image is built in memory with Pillow."""

import io
import random
import struct
import warnings
import zlib

import pytest
from PIL import Image

from p2w_search.imaging import ImageRejected, load_image

MB = 1024 * 1024
LIMITS = {"max_bytes": 10 * MB, "max_pixels": 40_000_000}

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def encode(img, fmt="PNG", **params):
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def png_header_only(width, height):
    """A PNG whose header declares width x height, followed by garbage instead of pixel data."""

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"garbage") + chunk(b"IEND", b"")


def reason_of(source, **limits):
    with pytest.raises(ImageRejected) as excinfo:
        load_image(source, **{**LIMITS, **limits})
    assert str(excinfo.value) == excinfo.value.reason
    return excinfo.value.reason


# --- sources -----------------------------------------------------------------


def test_bytes_source_returns_loaded_rgb_image():
    img = load_image(encode(Image.new("RGB", (3, 2), GREEN)), **LIMITS)
    assert isinstance(img, Image.Image)
    assert (img.mode, img.size) == ("RGB", (3, 2))
    assert img.getpixel((2, 1)) == GREEN


def test_file_object_source_is_independent_of_the_file():
    f = io.BytesIO(encode(Image.new("RGB", (2, 2), BLUE)))
    img = load_image(f, **LIMITS)
    f.close()
    assert img.getpixel((1, 1)) == BLUE
    assert img.resize((4, 4)).getpixel((3, 3)) == BLUE


@pytest.mark.parametrize("as_str", [False, True])
def test_path_source(tmp_path, as_str):
    path = tmp_path / "product.png"
    path.write_bytes(encode(Image.new("RGB", (5, 4), RED)))
    img = load_image(str(path) if as_str else path, **LIMITS)
    assert (img.size, img.getpixel((4, 3))) == ((5, 4), RED)


def test_missing_path_is_an_os_error_not_a_rejection(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png", **LIMITS)


class ShortReads(io.BytesIO):
    """A file object that returns at most 7 bytes per read, as pipes and sockets may."""

    def read(self, n=-1):
        return super().read(7 if n < 0 else min(n, 7))


def test_short_reads_are_assembled():
    data = encode(Image.new("RGB", (2, 2), RED))
    assert load_image(ShortReads(data), **LIMITS).getpixel((0, 0)) == RED


# --- size limits -------------------------------------------------------------


def test_over_max_bytes_rejected_with_limit_in_mb_after_reading_limit_plus_one():
    f = io.BytesIO(b"\0" * (10 * MB + 100))
    assert reason_of(f) == "image is larger than 10.0 MB"
    assert f.tell() == 10 * MB + 1


@pytest.mark.parametrize("max_bytes, shown", [(2048, "2.0 KB"), (1536, "1.5 KB"), (100, "100 bytes")])
def test_over_max_bytes_small_limits(max_bytes, shown):
    assert reason_of(b"x" * 3000, max_bytes=max_bytes) == f"image is larger than {shown}"


def test_exactly_max_bytes_is_accepted():
    data = encode(Image.new("RGB", (2, 2), RED))
    assert load_image(data, max_bytes=len(data), max_pixels=4).size == (2, 2)


def test_pixel_limit_checked_from_header_before_decoding():
    # The IDAT is garbage: decoding would report corruption, so the reason proves no decode happened.
    reason = reason_of(png_header_only(9000, 9000), max_pixels=40_000_000)
    assert reason == "image is 9000x9000 pixels, more than the limit of 40.0 megapixels"


def test_pixel_limit_is_inclusive():
    assert load_image(encode(Image.new("RGB", (4, 3))), max_bytes=MB, max_pixels=12).size == (4, 3)
    assert "4x3 pixels" in reason_of(encode(Image.new("RGB", (4, 3))), max_pixels=11)


def test_pillow_decompression_bomb_error_rejected():
    # 400 Mpx exceeds twice Image.MAX_IMAGE_PIXELS, so Pillow refuses it inside Image.open.
    reason = reason_of(png_header_only(20000, 20000), max_pixels=10**12)
    assert "megapixels" in reason


def test_pillow_decompression_bomb_warning_rejected_without_global_changes():
    before_limit, before_filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    # 100 Mpx is above Image.MAX_IMAGE_PIXELS (~89 Mpx) but below twice it: Pillow only warns.
    assert reason_of(png_header_only(10000, 10000), max_pixels=10**12) == (
        f"image has more pixels than the limit of {Image.MAX_IMAGE_PIXELS / 1e6:.1f} megapixels"
    )
    assert (Image.MAX_IMAGE_PIXELS, warnings.filters) == (before_limit, before_filters)


# --- broken input ------------------------------------------------------------


def test_empty_rejected():
    assert reason_of(b"") == "empty file"
    assert reason_of(io.BytesIO()) == "empty file"


def test_random_bytes_rejected():
    data = random.Random(1234).randbytes(4096)
    assert reason_of(data) == "not a recognised image format"


def test_format_outside_allowlist_rejected():
    data = encode(Image.new("RGB", (4, 4), RED), "PPM")
    assert reason_of(data) == "not a recognised image format"


def test_truncated_jpeg_rejected():
    noise = Image.frombytes("RGB", (64, 64), random.Random(5).randbytes(64 * 64 * 3))
    data = encode(noise, "JPEG", quality=95)
    assert reason_of(data[: len(data) // 2]) == "image data is truncated or corrupt"


def test_truncated_png_rejected():
    noise = Image.frombytes("RGB", (64, 64), random.Random(6).randbytes(64 * 64 * 3))
    data = encode(noise)
    assert reason_of(data[: len(data) // 2]) == "image data is truncated or corrupt"


# --- orientation and frames --------------------------------------------------


def test_exif_orientation_6_rotates_clockwise():
    img = Image.new("RGB", (4, 2), BLUE)
    img.putpixel((0, 0), RED)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored top-left is displayed top-right
    out = load_image(encode(img, exif=exif.tobytes()), **LIMITS)
    assert out.size == (2, 4)
    assert out.getpixel((1, 0)) == RED
    assert out.getpixel((0, 0)) == BLUE


def test_animated_gif_yields_first_frame():
    frames = [Image.new("RGB", (3, 3), RED), Image.new("RGB", (3, 3), BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    out = load_image(data, **LIMITS)
    assert (out.mode, out.size, out.getpixel((1, 1))) == ("RGB", (3, 3), RED)


# --- colour modes ------------------------------------------------------------


def test_rgba_transparent_pixel_becomes_white_and_half_alpha_blends():
    img = Image.new("RGBA", (3, 1), (255, 0, 0, 255))
    img.putpixel((1, 0), (0, 0, 0, 0))
    img.putpixel((2, 0), (0, 0, 0, 128))
    out = load_image(encode(img), **LIMITS)
    assert out.getpixel((0, 0)) == RED
    assert out.getpixel((1, 0)) == WHITE
    assert all(126 <= c <= 128 for c in out.getpixel((2, 0)))


def test_la_transparent_pixel_becomes_white():
    img = Image.new("LA", (2, 1), (40, 255))
    img.putpixel((1, 0), (0, 0))
    out = load_image(encode(img), **LIMITS)
    assert out.getpixel((0, 0)) == (40, 40, 40)
    assert out.getpixel((1, 0)) == WHITE


def test_palette_with_transparency_white_at_transparent_index():
    img = Image.new("P", (2, 1), 0)
    img.putpalette([255, 0, 0, 0, 0, 0])  # index 0 red, index 1 black
    img.putpixel((1, 0), 1)
    out = load_image(encode(img, transparency=1), **LIMITS)
    assert out.getpixel((0, 0)) == RED
    assert out.getpixel((1, 0)) == WHITE


def test_palette_without_transparency():
    img = Image.new("P", (1, 1), 1)
    img.putpalette([0, 0, 0, 0, 128, 255])
    assert load_image(encode(img), **LIMITS).getpixel((0, 0)) == (0, 128, 255)


def test_cmyk_pure_cyan_becomes_rgb_cyan():
    img = Image.new("CMYK", (2, 2), (255, 0, 0, 0))
    assert load_image(encode(img, "TIFF"), **LIMITS).getpixel((1, 1)) == (0, 255, 255)


def test_cmyk_jpeg_cyan_is_approximately_cyan():
    out = load_image(encode(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), "JPEG"), **LIMITS)
    r, g, b = out.getpixel((4, 4))
    assert r <= 5 and g >= 250 and b >= 250


@pytest.mark.parametrize("value, grey", [(0, 0), (32768, 128), (65535, 255)])
def test_16bit_greyscale_is_scaled_not_clipped(value, grey):
    img = Image.new("I;16", (2, 2), value)
    out = load_image(encode(img), **LIMITS)
    assert Image.open(io.BytesIO(encode(img))).mode.startswith("I")
    assert out.getpixel((0, 0)) == (grey, grey, grey)


def test_32bit_int_greyscale_tiff_is_scaled_as_16bit():
    out = load_image(encode(Image.new("I", (2, 2), 32768), "TIFF"), **LIMITS)
    assert out.getpixel((1, 1)) == (128, 128, 128)


@pytest.mark.parametrize("value, grey", [(0.5, 128), (200.0, 200)])
def test_float_greyscale(value, grey):
    out = load_image(encode(Image.new("F", (2, 2), value), "TIFF"), **LIMITS)
    assert all(abs(c - grey) <= 1 for c in out.getpixel((0, 0)))


def test_bilevel_and_greyscale():
    bilevel = Image.new("1", (2, 1), 0)
    bilevel.putpixel((1, 0), 1)
    out = load_image(encode(bilevel), **LIMITS)
    assert (out.getpixel((0, 0)), out.getpixel((1, 0))) == ((0, 0, 0), WHITE)
    assert load_image(encode(Image.new("L", (1, 1), 77)), **LIMITS).getpixel((0, 0)) == (77, 77, 77)
