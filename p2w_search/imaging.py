"""Defensive decoding of untrusted product and query images.

Everything that can go wrong with an uploaded or catalogue image becomes an
`ImageRejected` with a short sentence that can be shown to a user or an admin.
Pure Python + Pillow: no Django imports.
"""

import io
import os
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageRejected", "load_image"]

# Only formats a shop or a phone produces (the JPEG plugin also opens MPO). An
# allowlist keeps Pillow away from plugins that are risky on untrusted input
# (EPS hands the file to Ghostscript).
_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "PA", "P")


class ImageRejected(ValueError):
    """An image that cannot be used; `reason` is a short readable sentence for a user or an admin."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def load_image(source, *, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode `source` (bytes, a path (str/Path), or a binary file object) into an RGB image.

    Reads at most ``max_bytes + 1`` bytes and checks ``width * height`` against
    ``max_pixels`` from the header before any pixel data is decoded. Applies the
    EXIF orientation, takes the first frame of animations and composites any
    transparency on white. The result is fully loaded and independent of `source`
    (a file object is read but not closed).

    Raises ImageRejected for anything wrong with the image itself; an unreadable
    path (missing file, permissions) raises the usual OSError.
    """
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
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        f"image is {width}x{height} pixels, more than the limit of "
                        f"{_megapixels(max_pixels)} megapixels"
                    )
                img.load()
                img = ImageOps.exif_transpose(img)  # returns a copy, detached from the file
            return _to_rgb(img)
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
        except (OSError, SyntaxError, EOFError, ValueError, IndexError, KeyError) as exc:
            # Pillow plugins report broken data with any of these; the cause stays chained for logs.
            raise ImageRejected("image data is truncated or corrupt") from exc


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
