"""Defensive decoding of untrusted product and query images.

Everything that can go wrong with an uploaded or catalogue image becomes an
`ImageRejected` with a short sentence that can be shown to a user or an admin.
Pure Python + Pillow: no Django imports.
"""

import io
import os
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageRejected", "Decoded", "decode_image", "load_image", "public_copy", "DEFAULT_MAX_ASPECT"]

# Only formats a shop or a phone produces (the JPEG plugin also opens MPO). An
# allowlist keeps Pillow away from plugins that are risky on untrusted input
# (EPS hands the file to Ghostscript).
_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "PA", "P")
# The model's preprocessing scales the short side to its input size, so a 160,000 x 1 image
# became a 35,840,000 x 224 intermediate (3.9 GB, 7.7 s on the query worker) although it
# passes any pixel limit. The long side may be at most this many times the short side.
DEFAULT_MAX_ASPECT = 20
# Formats served as they are photographed (lossy) get a JPEG copy; the others a lossless PNG.
_LOSSY_SOURCES = ("JPEG", "MPO", "WEBP", "AVIF")


class ImageRejected(ValueError):
    """An image that cannot be used; `reason` is a short readable sentence for a user or an admin."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Decoded:
    """A decoded image (RGB, EXIF orientation applied) and the format of the file it came from."""

    image: Image.Image
    format: str


def load_image(source, *, max_bytes: int, max_pixels: int, max_aspect: float = DEFAULT_MAX_ASPECT) -> Image.Image:
    """Decode `source` (bytes, a path (str/Path), or a binary file object) into an RGB image.

    Reads at most ``max_bytes + 1`` bytes and checks ``width * height`` against
    ``max_pixels`` and the ratio of the long to the short side against ``max_aspect``
    from the header, before any pixel data is decoded. Applies the EXIF orientation,
    takes the first frame of animations and composites any transparency on white. The
    result is fully loaded and independent of `source` (a file object is read but not closed).

    Raises ImageRejected for anything wrong with the image itself; an unreadable
    path (missing file, permissions) raises the usual OSError.
    """
    return decode_image(source, max_bytes=max_bytes, max_pixels=max_pixels, max_aspect=max_aspect).image


def decode_image(source, *, max_bytes: int, max_pixels: int, max_aspect: float = DEFAULT_MAX_ASPECT) -> Decoded:
    """Like `load_image`, and say which format the file was in."""
    data = _read_limited(source, max_bytes)
    if not data:
        raise ImageRejected("empty file")
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; we refuse both.
        # catch_warnings is process-global, so under threads the max_pixels check
        # below is the guard that always holds.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=_open_formats()) as img:
                _check_size(*img.size, max_pixels=max_pixels, max_aspect=max_aspect)
                source_format = img.format
                img.load()
                img = ImageOps.exif_transpose(img)  # returns a copy, detached from the file
            return Decoded(image=_to_rgb(img), format=source_format)
        except ImageRejected:
            raise
        except UnidentifiedImageError as exc:
            raise ImageRejected("not a recognised image format") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            pillow_limit = Image.MAX_IMAGE_PIXELS or max_pixels
            raise ImageRejected(
                "image has more pixels than the limit of "
                f"{_megapixels(min(max_pixels, pillow_limit))} megapixels"
            ) from exc
        except (OSError, SyntaxError, EOFError, ValueError, IndexError, KeyError, TypeError, struct.error,
                ZeroDivisionError) as exc:
            # Pillow plugins report broken data with any of these (a TIFF whose StripOffsets tag is text or a
            # fraction raises TypeError in load(); headers are read with struct); the cause stays chained for logs.
            raise ImageRejected("image data is truncated or corrupt") from exc


def public_copy(decoded: Decoded) -> tuple[bytes, str]:
    """Return ``(bytes, extension)`` of a copy of ``decoded`` that is safe to serve publicly.

    The copy is encoded anew from the pixels, so nothing of the uploaded file survives but
    the picture: no EXIF (a phone's GPS position), no ICC or XMP text, no data appended
    after the image (a zip behind a JPEG). Photographic sources become JPEG at quality 95,
    the others PNG (lossless, so a synthetic or flat image keeps its exact pixels).
    """
    buffer = io.BytesIO()
    if decoded.format in _LOSSY_SOURCES:
        decoded.image.save(buffer, format="JPEG", quality=95)
        return buffer.getvalue(), ".jpg"
    decoded.image.save(buffer, format="PNG")
    return buffer.getvalue(), ".png"


def _check_size(width, height, *, max_pixels, max_aspect):
    if width * height > max_pixels:
        raise ImageRejected(
            f"image is {width}x{height} pixels, more than the limit of {_megapixels(max_pixels)} megapixels"
        )
    if max(width, height) > max_aspect * max(min(width, height), 1):
        raise ImageRejected(
            f"image is {width}x{height} pixels; its long side may be at most {max_aspect:g} times its short side"
        )


def _open_formats():
    # Pillow raises KeyError for a format name its build lacks (AVIF is optional).
    Image.init()
    return [name for name in _FORMATS if name in Image.OPEN]


def _read_limited(source, max_bytes):
    """Return at most max_bytes + 1 bytes of `source`; reject if there were more than max_bytes."""
    limit = max_bytes + 1
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source[:limit])
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            data = _read_stream(f, limit)
    else:
        data = _read_stream(source, limit)
    if len(data) > max_bytes:
        raise ImageRejected(f"image is larger than {_human_size(max_bytes)}")
    return data


def _read_stream(f, limit):
    # read(n) may legitimately return fewer than n bytes before EOF (pipes, sockets).
    chunks, remaining = [], limit
    while remaining > 0:
        chunk = f.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _to_rgb(img):
    """Convert any Pillow mode to RGB, mapping deep greyscale into 0..255 and alpha onto white."""
    if img.mode.startswith("I"):  # I, I;16, I;16B, ...: treated as 16-bit samples
        img = img.convert("I").point(lambda v: v / 256).convert("L")
    elif img.mode == "F":
        _, high = img.getextrema()
        scale = 255 if high <= 1.0 else 1  # floats in 0..1 are the common convention
        img = img.point(lambda v: v * scale).convert("L")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError:
        raise ImageRejected(f"unsupported colour mode {img.mode}") from None


def _human_size(n):
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _megapixels(n):
    return f"{n / 1_000_000:.1f}"
