"""The zip of images that comes with a manifest: checked before anything is inflated.

Names are compared in Unicode NFC on both sides: macOS writes ``café.jpg`` decomposed
into a zip, a spreadsheet writes it composed, and both mean the same file. Two entries
that mean the same name are refused rather than one of them chosen silently.
"""

import io
import lzma
import posixpath
import stat
import struct
import threading
import unicodedata
import zipfile
import zlib

from p2w_search.conf import app_settings

__all__ = ["ArchiveRejected", "EntryDamaged", "Archive", "check_archive", "normalise_name", "pack_images"]

# The compression methods zipfile inflates; Deflate64 (9), which Windows writes for large files, and AES (99) it cannot.
READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# What zipfile raises for an entry that its central directory promised and its data does not hold (bad CRC-32,
# a local header that names another file, corrupt compressed data, an offset out of the file); fuzzed.
_DAMAGE = (zipfile.BadZipFile, NotImplementedError, EOFError, OSError, ValueError, zlib.error, lzma.LZMAError)


class ArchiveRejected(ValueError):
    """The archive is unsafe or unreadable; the message says why."""


class EntryDamaged(ValueError):
    """An entry of a checked archive cannot be read back: its data is damaged; the message says how."""


def normalise_name(name):
    """The form in which a manifest's image name and an archive entry's name are compared."""
    return posixpath.normpath(unicodedata.normalize("NFC", name.strip()))


def _is_unsafe(name):
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return True
    return any(part == ".." for part in name.split("/"))


# Entries (files and folders) a zip may list, per file it may hold (IMPORT_MAX_FILES).
MAX_ENTRIES_PER_FILE = 2
_CENTRAL_HEADER = struct.Struct(zipfile.structCentralDir)


def _count_entries(file, most):
    """The entries of the zip's central directory, as zipfile would list them, counted up to ``most`` + 1.

    Read record by record, keeping none: what a zip's end record claims is not trusted, and a
    central directory of millions of tiny entries costs no memory here. 0 where there is no
    end record (zipfile then refuses the file).
    """
    file.seek(0)
    end = zipfile._EndRecData(file)  # the end record, zip64's too, as zipfile finds it
    if end is None:
        return 0
    size = end[zipfile._ECD_SIZE]
    start = end[zipfile._ECD_LOCATION] - size  # as zipfile finds it, data prepended to the zip included
    if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
        start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
    if start < 0:
        return 0  # zipfile refuses it
    file.seek(start)
    count, read = 0, 0
    while read < size and count <= most:
        header = file.read(_CENTRAL_HEADER.size)
        if len(header) < _CENTRAL_HEADER.size or header[:4] != zipfile.stringCentralDir:
            break  # zipfile says what is wrong
        fields = _CENTRAL_HEADER.unpack(header)
        skip = (fields[zipfile._CD_FILENAME_LENGTH] + fields[zipfile._CD_EXTRA_FIELD_LENGTH]
                + fields[zipfile._CD_COMMENT_LENGTH])
        file.seek(skip, io.SEEK_CUR)
        read += _CENTRAL_HEADER.size + skip
        count += 1
    file.seek(0)
    return count


def check_archive(file):
    """Return ``{normalised name: ZipInfo}`` of the files in a zip, or raise ArchiveRejected.

    Refused: a path that climbs out of the archive (``../x.jpg``) or is absolute, links,
    encrypted entries, compression methods zipfile cannot inflate, two entries with the same
    name, too many files, an entry larger than the image limit, a total that inflates past
    the limit, and entries compressed so much that they can only be a bomb. Nothing is
    inflated to check this.
    """
    # zipfile keeps an object for every entry it lists, folders and empty files too: counted first, without them.
    most = MAX_ENTRIES_PER_FILE * app_settings.IMPORT_MAX_FILES
    try:
        listed = _count_entries(file, most)
    except (struct.error, OSError, ValueError):
        listed = 0  # zipfile says what is wrong below
    if listed > most:
        raise ArchiveRejected(f"the archive lists more than {most} entries (files and folders); it may hold at most "
                              f"{app_settings.IMPORT_MAX_FILES} files")
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):  # the last: "zip file version 9.9"
        raise ArchiveRejected("the archive is not a readable zip file") from None
    _check_named(archive.infolist())
    entries = [info for info in archive.infolist() if not info.is_dir()]
    if len(entries) > app_settings.IMPORT_MAX_FILES:
        raise ArchiveRejected(f"the archive holds {len(entries)} files, more than {app_settings.IMPORT_MAX_FILES}")
    total, names = 0, {}
    for info in entries:
        if _is_unsafe(info.filename):
            raise ArchiveRejected(f"unsafe path in the archive: {info.filename!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveRejected(f"links are not allowed in the archive: {info.filename!r}")
        if info.flag_bits & 0x1:
            raise ArchiveRejected(f"encrypted entry in the archive: {info.filename!r}")
        if info.compress_type not in READABLE_METHODS:
            raise ArchiveRejected(f"{info.filename!r} is compressed with a method this server cannot read (method "
                                  f"{info.compress_type}); zip the images again with the usual compression (deflate)")
        if info.file_size > app_settings.MAX_IMAGE_BYTES:
            raise ArchiveRejected(f"{info.filename!r} inflates to {info.file_size} bytes, more than the image limit "
                                  f"of {app_settings.MAX_IMAGE_BYTES}")
        if info.compress_size and info.file_size / info.compress_size > app_settings.IMPORT_MAX_RATIO:
            raise ArchiveRejected(f"{info.filename!r} is compressed {info.file_size // info.compress_size}:1, "
                                  "which only a zip bomb is")
        name = normalise_name(info.filename)
        if name in names:
            raise ArchiveRejected(f"the archive holds {name!r} twice ({names[name].filename!r} and "
                                  f"{info.filename!r}); give each file once")
        names[name] = info
        total += info.file_size
    if total > app_settings.IMPORT_MAX_BYTES:
        raise ArchiveRejected(f"the archive inflates to {total} bytes, more than {app_settings.IMPORT_MAX_BYTES}")
    return names


def _check_named(infos):
    """Raise ArchiveRejected for an entry without a name: zipfile cuts a name at its first NUL, so a name that starts
    with one is empty, and ``ZipInfo.is_dir`` (its last character) raised IndexError, a 500."""
    for position, info in enumerate(infos, start=1):
        if not info.filename:
            raise ArchiveRejected(f"entry {position} of the archive has no name; zip the images again")


class Archive:
    """An upload's checked zip, read entry by entry.

    ``read(name)`` raises KeyError for a name it lacks, and EntryDamaged for an entry whose
    data is not what the zip's directory says (found only by inflating it).

    Threads may read at once (the import prepares images in threads): one reads at a time.
    """

    def __init__(self, file):
        self.entries = check_archive(file)
        file.seek(0)
        self._zip = zipfile.ZipFile(file)
        self._lock = threading.Lock()

    def read(self, name):
        info = self.entries[normalise_name(name)]
        try:
            with self._lock, self._zip.open(info) as entry:
                # The header's size may lie; never read past the limit (load_image refuses the extra byte).
                return entry.read(app_settings.MAX_IMAGE_BYTES + 1)
        except _DAMAGE as exc:
            raise EntryDamaged(str(exc).rstrip(".") or "its data ends early") from None

    def close(self):
        self._zip.close()


def pack_images(files):
    """Pack uploaded image files ``{name: bytes}`` into a zip, so every import reads one archive.

    Raises ArchiveRejected when two files have the same name: which one a row means is unknown.
    """
    buffer = io.BytesIO()
    seen = set()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files:
            base = normalise_name(posixpath.basename(name))
            if base in seen:
                raise ArchiveRejected(f"two of the images are named {base!r}; give each file once")
            seen.add(base)
            archive.writestr(base, data)
    return buffer.getvalue()
