"""Hostile and careless files for the upload tests: zips, manifests and images built byte by byte."""

import io
import json
import struct
import unicodedata
import warnings
import zipfile
import zlib

from PIL import Image

from tests.factories import png

HEADER = "sku,title,description,category,price,currency,in_stock,images\n"


def row(sku, images="red.png", *, title="Tee", price="9.50", category="t-shirt"):
    return f"{sku},{title},,{category},{price},EUR,true,{images}\n"


def json_row(sku, images="red.png", *, title="Tee", price="9.50", category="t-shirt", **more):
    """One JSON Lines row; what is not ASCII is written as a JSON escape, so a lone surrogate can be sent."""
    return json.dumps({"sku": sku, "title": title, "category": category, "price": price, "images": images,
                       **more}) + "\n"


def zip_bytes(entries, *, compression=zipfile.ZIP_DEFLATED):
    """A zip of ``[(name or ZipInfo, bytes)]``, entries written exactly as given (duplicates included)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": on purpose
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def link_entry(name, target):
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)  # a symbolic link, as Info-ZIP stores it
    return info, target.encode()


def encrypted_zip(name, data):
    """A zip whose one entry carries the 'encrypted' flag (zipfile cannot write real encryption)."""
    raw = bytearray(zip_bytes([(name, data)], compression=zipfile.ZIP_STORED))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local header, central directory
        at = raw.find(signature)
        raw[at + offset] |= 0x1
    return bytes(raw)


def damaged_zip(data, *, method=None, crc=None, local_name=None, compress_size=None, overwrite=None,
                extract_version=None):
    """``data`` (a zip) with its first entry's local header and central directory record changed alike.

    ``local_name`` changes the local header's name only (same length); ``overwrite`` puts 0xff
    over the first bytes of the entry's data; ``extract_version`` is the directory's
    "version needed to extract" (zipfile reads up to 63).
    """
    raw = bytearray(data)
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    for value, fmt, local_at, central_at in ((method, "<H", 8, 10), (crc, "<I", 14, 16),
                                             (compress_size, "<I", 18, 20)):
        if value is not None:
            struct.pack_into(fmt, raw, local + local_at, value)
            struct.pack_into(fmt, raw, central + central_at, value)
    if extract_version is not None:
        struct.pack_into("<H", raw, central + 6, extract_version)
    name_length, extra_length = struct.unpack_from("<HH", raw, local + 26)
    if local_name is not None:
        assert len(local_name) == name_length
        raw[local + 30:local + 30 + name_length] = local_name
    if overwrite is not None:
        start = local + 30 + name_length + extra_length
        raw[start:start + overwrite] = b"\xff" * overwrite
    return bytes(raw)


def png_header(width, height):
    """A PNG that declares ``width`` x ``height`` and holds almost no data: pixel limits must read the header."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def wide_png(width=160_000, height=1):
    """A real image a few hundred bytes long that no model should be made to resize."""
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, format="PNG")
    return buffer.getvalue()


SECRET = "Artist-secret-marker"
APPENDED = b"PK\x03\x04appended-zip-marker"


def jpeg_with_gps_and_appended_zip():
    """A phone photo with its GPS position and an author in EXIF, and a zip glued after the image."""
    exif = Image.Exif()
    exif[0x013B] = SECRET
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)}
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (200, 40, 40)).save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue() + APPENDED


def nfd(text):
    return unicodedata.normalize("NFD", text)


RED, BLUE = png((220, 20, 20)), png((20, 20, 220))
