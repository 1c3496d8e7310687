"""Every refusal of ``check_archive``, on hostile zips built byte by byte where zipfile will not make them.

The README promises that an archive is checked before anything is inflated: paths that climb
out or are absolute, links, encrypted entries, too many files, an entry or a total past the
size caps, and zip bombs are refused with a 400. The caps are made small with settings so
that each archive here is a few kilobytes.
"""

import io
import os
import stat
import zipfile

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from p2w_search.uploads.archive import ArchiveRejected, check_archive
from tests.factories import MerchantFactory, png

MANIFEST = "sku,title,category,price,images\nTEE-1,Red tee,t-shirt,19.99,red.png\n"


def zip_bytes(entries):
    """A zip of ``entries``: ``(name or ZipInfo, data)`` pairs, stored (not compressed) unless the ZipInfo says."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def encrypted(data):
    """Set the 'encrypted' flag (general purpose bit 0) of every entry of the zip ``data``.

    zipfile writes no encrypted entries (it overwrites ``flag_bits`` when it writes), so the bit
    is set in the bytes: at offset 6 of each local header (``PK\\3\\4``) and offset 8 of each
    central directory header (``PK\\1\\2``), which is the one a reader trusts.
    """
    data = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        assert start >= 0, signature
        while start >= 0:
            data[start + offset] |= 0x01
            start = data.find(signature, start + 4)
    return bytes(data)


def symlink(name, target):
    """A ZipInfo for a symbolic link, as Info-ZIP's ``zip --symlinks`` stores one: the mode in external_attr."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def noise(size):
    """Bytes that do not compress: an entry's size is then what it inflates to."""
    return os.urandom(size)


@pytest.fixture
def small_caps(settings):
    """Caps small enough to pass with a few kilobytes."""
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_MAX_FILES": 3, "MAX_IMAGE_BYTES": 4000,
                           "IMPORT_MAX_BYTES": 10_000}


def test_a_well_formed_archive_passes_and_lists_its_images(small_caps):
    data = zip_bytes([("red.png", png()), ("shots/blue.png", png((0, 0, 200))), ("./shots/", b"")])
    entries = check_archive(io.BytesIO(data))
    assert sorted(entries) == ["red.png", "shots/blue.png"]  # a folder is no file


def test_a_file_that_is_not_a_zip_is_refused():
    with pytest.raises(ArchiveRejected, match=r"^the archive is not a readable zip file$"):
        check_archive(io.BytesIO(b"PNG? no: just some bytes that are no zip file at all"))


def test_a_truncated_zip_is_refused():
    data = zip_bytes([("red.png", png())])
    with pytest.raises(ArchiveRejected, match=r"^the archive is not a readable zip file$"):
        check_archive(io.BytesIO(data[: len(data) // 2]))  # the central directory is cut off


def test_more_files_than_the_cap_are_refused(small_caps):
    check_archive(io.BytesIO(zip_bytes([(f"{i}.png", b"x") for i in range(3)])))  # three is the cap
    with pytest.raises(ArchiveRejected, match=r"^the archive holds 4 files, more than 3$"):
        check_archive(io.BytesIO(zip_bytes([(f"{i}.png", b"x") for i in range(4)])))


@pytest.fixture
def unlisted(monkeypatch):
    """``check_archive`` that fails the test if zipfile lists the archive's entries (what it refuses, it refuses
    before that)."""
    def listing(*args, **kwargs):
        raise AssertionError("zipfile listed the archive's entries")

    def check(data):
        with monkeypatch.context() as patched:
            patched.setattr(zipfile, "ZipFile", listing)
            check_archive(io.BytesIO(data))
    return check


def test_more_entries_than_twice_the_file_cap_are_refused_before_zipfile_lists_them(small_caps, unlisted):
    # Folders and empty files cost zipfile an object each, as files do: three files may come with three folders.
    data = zip_bytes([("red.png", png()), *((f"shots-{i}/", b"") for i in range(6))])
    with pytest.raises(ArchiveRejected, match=r"^the archive lists more than 6 entries \(files and folders\); "
                                              r"it may hold at most 3 files$"):
        unlisted(data)


def test_entries_are_counted_in_the_central_directory_whatever_its_end_record_claims(small_caps, unlisted):
    data = bytearray(zip_bytes([(f"{i}.png", b"") for i in range(7)]))
    end = data.rfind(b"PK\x05\x06")
    data[end + 8:end + 12] = (1).to_bytes(2, "little") * 2  # "1 entry on this disk, 1 in all"
    with pytest.raises(ArchiveRejected, match=r"^the archive lists more than 6 entries"):
        unlisted(bytes(data))


def test_a_zip64_central_directory_is_counted_too(small_caps, unlisted):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(65_536):  # one more than a zip's own end record counts: zip64's is written
            archive.writestr(f"{i}", b"")
    data = buffer.getvalue()
    assert b"PK\x06\x06" in data
    with pytest.raises(ArchiveRejected, match=r"^the archive lists more than 6 entries"):
        unlisted(data)


def test_a_link_is_refused(small_caps):
    data = zip_bytes([("red.png", png()), symlink("passwd.png", "/etc/passwd")])
    with pytest.raises(ArchiveRejected, match=r"^links are not allowed in the archive: 'passwd.png'$"):
        check_archive(io.BytesIO(data))


def test_an_encrypted_entry_is_refused(small_caps):
    data = encrypted(zip_bytes([("red.png", png())]))
    assert zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & 0x1  # the archive really says so
    with pytest.raises(ArchiveRejected, match=r"^encrypted entry in the archive: 'red.png'$"):
        check_archive(io.BytesIO(data))


def test_an_entry_past_the_image_cap_is_refused(small_caps):
    check_archive(io.BytesIO(zip_bytes([("edge.png", noise(4000))])))  # exactly at the cap
    with pytest.raises(ArchiveRejected, match=r"^'big.png' inflates to 4001 bytes, more than the image limit of 4000$"):
        check_archive(io.BytesIO(zip_bytes([("big.png", noise(4001))])))


def test_a_total_past_the_archive_cap_is_refused(small_caps):
    # Three entries, each under the image cap; together past the archive's 10,000 bytes.
    data = zip_bytes([(f"{i}.png", noise(3500)) for i in range(3)])
    with pytest.raises(ArchiveRejected, match=r"^the archive inflates to 10500 bytes, more than 10000$"):
        check_archive(io.BytesIO(data))


def test_an_entry_that_compresses_like_a_bomb_is_refused(small_caps):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.png", b"\0" * 3900)  # under every size cap, but about 200:1
    with pytest.raises(ArchiveRejected, match=r"^'zeros.png' is compressed \d+:1, which only a zip bomb is$"):
        check_archive(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("name", [
    "../x.png",
    "shots/../../x.png",
    "/etc/x.png",           # absolute, POSIX
    "\\x.png",              # absolute, Windows without a drive
    "C:/Windows/x.png",     # a drive letter
    "c:x.png",              # a drive-relative path
    "shots\\..\\..\\x.png",  # climbing out with Windows separators
    "shots\\x.png",         # any backslash: a Windows unzip takes it for a separator
])
def test_paths_that_climb_out_or_are_absolute_are_refused(name):
    data = zip_bytes([("red.png", png()), (name, png())])
    assert name in zipfile.ZipFile(io.BytesIO(data)).namelist()  # stored as written, not cleaned by zipfile
    with pytest.raises(ArchiveRejected) as refused:
        check_archive(io.BytesIO(data))
    assert str(refused.value) == f"unsafe path in the archive: {name!r}"


@pytest.fixture
def merchant_api(db, django_user_model):
    user = django_user_model.objects.create_user("acme", password="pw")
    MerchantFactory(slug="acme", user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def named(data, name):
    handle = io.BytesIO(data)
    handle.name = name
    return handle


@pytest.mark.parametrize(("archive", "reason"), [
    (b"not a zip", "the archive is not a readable zip file"),
    (zip_bytes([symlink("red.png", "/etc/passwd")]), "links are not allowed in the archive: 'red.png'"),
    (encrypted(zip_bytes([("red.png", png())])), "encrypted entry in the archive: 'red.png'"),
    (zip_bytes([("C:\\red.png", png())]), "unsafe path in the archive: 'C:\\\\red.png'"),
])
def test_the_upload_api_answers_400_on_archive_with_the_reason(merchant_api, media, archive, reason):
    from p2w_search.models import ImportJob

    response = merchant_api.post("/api/imports/", {"manifest": named(MANIFEST.encode(), "c.csv"),
                                                   "archive": named(archive, "images.zip")}, format="multipart")
    assert response.status_code == 400, response.content
    assert response.json() == {"archive": [f"The archive is refused: {reason}."]}
    assert not ImportJob.objects.exists()


def test_the_upload_api_applies_the_file_cap_from_the_settings(merchant_api, media, small_caps):
    archive = zip_bytes([(f"{i}.png", png()) for i in range(4)])
    response = merchant_api.post("/api/imports/", {"manifest": named(MANIFEST.encode(), "c.csv"),
                                                   "archive": named(archive, "images.zip")}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"archive": ["The archive is refused: the archive holds 4 files, more than 3."]}
