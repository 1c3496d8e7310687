"""A shopper's search photo, kept for a short while so the search can be refined, paged and filtered.

The photo is kept in the uploads' storage (``P2W_SEARCH["UPLOAD_STORAGE"]``, never served by
a URL) under a random name, with a small JPEG preview beside it. What is kept is a copy
encoded anew from the pixels, its long side at most ``KEPT_LONG_SIDE``: a few hundred kB
where the upload may be 10 MB, and nothing of the file but the picture (no EXIF, so no
phone's GPS position). ``PHOTO_KEEP_SECONDS`` after the upload it is
refused with a message and deleted: at the first use after that, and by
``remove_expired()``, which every upload runs and which a periodic task may run too. It also
keeps the photos of all sessions together to ``PHOTO_KEEP_MAX``, the newest: per-address
budgets bound one shopper, this bounds the disk whatever the number of addresses. An upload lists
the folder once for both bounds; a storage that cannot list keeps no photo (``PhotoNotKept``, a
503), since neither bound could hold; a kept photo its storage cannot read now (EIO, EACCES) is a 503
(``PhotoUnreadable``), not a 410: it is still kept, and its link works again once the storage reads. The
sweep touches only names this module writes (another app's file in the folder stays) and removes
a preview left without its photo once its time is past. A photo whose upload time is more than
``CLOCK_SLACK`` ahead of the clock (kept before the clock was set back) counts as expired: a clock
set back never keeps a photo longer.

Who owns a photo does not depend on a read-modify-write of the session. Two requests of one
browser may overlap (two tabs uploading at once, an upload while another tab's page saves the
session), and the session's last save wins: a list of tokens in the session lost the other
tab's photo. So the session holds one owner id, written once and the same in every copy of
the session (derived from the session's key, or random for a session created by this very
request), and everything else is in the storage's names: ``<seconds>-<microseconds>-<owner>-<nonce>``
(the upload time first, so the sweep needs no database and no file metadata). The token the
shopper's link carries is the upload time, the nonce and a MAC (``SECRET_KEY``) of both with
the owner id: only the session that uploaded a photo can use its token (another browser, or
a token altered, gets a 404), and the token still says it was this session's after its files
are gone. A session's photos beyond ``KEPT_PER_SESSION`` (the oldest) are let go, counted
from the storage's names, never from a list in the session.

Sessions from before the owner id (their tokens and upload times in ``SESSION_KEY``, the
tokens let go in ``LET_GO_KEY``) are still read, never written: their photos load until they
expire (a 410), within ``PHOTO_KEEP_SECONDS``.

    token = photos.keep(request, data)      # after load_image accepted the bytes
    kept = photos.load(request, token)      # KeptPhoto(token, data, preview) or PhotoGone
"""

import base64
import binascii
import hmac
import io
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.utils.crypto import salted_hmac

from p2w_search.conf import app_settings, image_limits
from p2w_search.imaging import Decoded, ImageRejected, decode_image, public_copy
from p2w_search.uploads.storage import upload_backend

__all__ = ["KEPT_PER_SESSION", "PhotoGone", "PhotoNotKept", "PhotoUnreadable", "KeptPhoto", "keep", "load",
           "remove_expired", "keep_seconds", "kept_for"]

logger = logging.getLogger(__name__)

OWNER_KEY = "p2w_photo_owner"  # the session's owner id of its photos: 32 hex digits, written once
SESSION_KEY = "p2w_photos"  # before the owner id: {token: upload time}; read, never written
LET_GO_KEY = "p2w_photos_let_go"  # before the owner id: tokens let go for newer ones; read, never written
FOLDER = "p2w-photos"
KEPT_PER_SESSION = 5  # a session's older photos are deleted when it uploads more: storage per shopper is bounded
PREVIEW_SIZE = 160
# The long side of the copy kept to search with: four times what a real CLIP's 224-pixel input needs.
KEPT_LONG_SIDE = 1024

_OWNER = re.compile(r"[0-9a-f]{32}")
_STAMP_BYTES, _NONCE_BYTES, _MAC_BYTES = 8, 12, 12  # a token: upload time (microseconds), nonce, MAC
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # the 32 bytes in URL-safe base64, unpadded
# The names this module writes, and only these (another app's files in the folder are not its own): a photo
# kept with an owner id, and one of the layout before (its token 24 characters); each with its ".jpg" preview.
_KEPT_NAME = re.compile(r"([0-9]{1,12})-([0-9]{6})-([0-9a-f]{32})-([0-9a-f]{24})")
_LEGACY_NAME = re.compile(r"([0-9]{1,12})-[A-Za-z0-9_-]{24}")
# How far ahead of this clock an upload time may be (servers' clocks differ a little): a photo whose time is
# further ahead was kept before this clock went back, and is treated as expired, so that a clock set back never
# keeps a photo longer than PHOTO_KEEP_SECONDS and this.
CLOCK_SLACK = 60.0
_OWNER_SALT = "p2w_search.photos.owner"
_TOKEN_SALT = "p2w_search.photos.token"


class PhotoGone(Exception):
    """The photo cannot be used any more (``status`` 410) or was never this session's (404); ``reason`` says so."""

    def __init__(self, reason, *, status):
        super().__init__(reason)
        self.reason, self.status = reason, status


class PhotoNotKept(Exception):
    """The server could not keep the photo (its storage refused it): a 503, not the shopper's fault."""


NOT_KEPT = "The shop cannot keep your photo right now; try again in a few minutes."


class PhotoUnreadable(Exception):
    """The photo is kept but its storage cannot read it now (a failing disk, a folder made unreadable): a 503 that
    passes, not a 410. Telling the shopper it is gone was false, and once the storage reads again the link works."""

    status = 503

    def __init__(self, reason=None):
        self.reason = reason or UNREADABLE
        super().__init__(self.reason)


UNREADABLE = "The shop cannot read your photo right now; it is still kept. Try this link again in a few minutes."


@dataclass(frozen=True)
class KeptPhoto:
    token: str
    data: bytes
    preview: str  # a data: URL of a small JPEG, for the page to show the shopper their photo


def keep_seconds():
    return float(app_settings.PHOTO_KEEP_SECONDS)


def kept_for():
    """The keeping time in a shopper's words: "30 minutes", "45 seconds"."""
    seconds = int(keep_seconds())
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def _legacy_name(token, uploaded):
    # The layout before the owner id: the upload time in the name, the token the shopper's.
    return f"{FOLDER}/{int(uploaded)}-{token}"


def _name(owner, stamp, nonce):
    # The upload time first (the sweep reads it), then its microseconds (a session's photos in the order sent).
    return f"{FOLDER}/{stamp // 1_000_000}-{stamp % 1_000_000:06d}-{owner}-{nonce.hex()}"


def _mac(owner, stamp, nonce):
    payload = owner.encode() + stamp.to_bytes(_STAMP_BYTES, "big") + nonce
    return salted_hmac(_TOKEN_SALT, payload, algorithm="sha256").digest()[:_MAC_BYTES]


def _token(owner, stamp, nonce):
    return _text(stamp.to_bytes(_STAMP_BYTES, "big") + nonce + _mac(owner, stamp, nonce))


def _text(raw):
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _read_token(owner, token):
    """``(stamp, nonce)`` of ``token`` when it was given to ``owner``'s session, else None (another's, altered)."""
    if owner is None or not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (binascii.Error, ValueError):
        return None
    if _text(raw) != token:  # one spelling per token: its last character's spare bits are zero
        return None
    stamp = int.from_bytes(raw[:_STAMP_BYTES], "big")
    nonce, mac = raw[_STAMP_BYTES:_STAMP_BYTES + _NONCE_BYTES], raw[_STAMP_BYTES + _NONCE_BYTES:]
    if not hmac.compare_digest(mac, _mac(owner, stamp, nonce)):
        return None
    return stamp, nonce


def _owner(session):
    """The session's owner id of its photos, without writing the session; None for a session not saved yet.

    Stored once (``keep``); until then, and should the write be lost to another tab's save of the
    session, it is derived from the session's key, so every request of the session reads the same.
    It stays stored when the key changes (a login cycles it and keeps the session's data).
    """
    stored = session.get(OWNER_KEY)
    if isinstance(stored, str) and _OWNER.fullmatch(stored):
        return stored
    key = session.session_key  # after the read above: None for a session unknown to the store
    if not key:
        return None
    return salted_hmac(_OWNER_SALT, key, algorithm="sha256").hexdigest()[:32]


def _owner_to_keep(session):
    owner = _owner(session)
    if owner is None:  # a session this request creates: no other request can hold it yet
        owner = secrets.token_hex(16)
    if session.get(OWNER_KEY) != owner:
        session[OWNER_KEY] = owner  # once: each later save of the session, whichever tab's, writes the same
    return owner


def keep(request, data):
    """Keep ``data`` (a photo's bytes that ``load_image`` accepted) for this session; return its token."""
    storage = upload_backend()
    owner = _owner_to_keep(request.session)
    stamp, nonce = int(time.time() * 1_000_000), secrets.token_bytes(_NONCE_BYTES)
    name = _name(owner, stamp, nonce)
    data, preview = _kept_files(data)
    try:
        storage.save(name, ContentFile(data))
        storage.save(f"{name}.jpg", ContentFile(preview))
    except Exception as exc:  # noqa: BLE001 (a full disk; any storage's refusal: S3's are no OSError)
        # Nothing half-written is left to the expiry sweep.
        logger.error("could not keep a shopper's photo %s: %r", name, exc)
        _delete(storage, name)
        raise PhotoNotKept(NOT_KEPT) from None
    try:  # one listing an upload, for both bounds
        files = _listing(storage)
    except Exception as exc:  # noqa: BLE001 (any storage's error: S3's are not OSError)
        # Without a listing neither this session's photos nor all sessions' can be bounded: not kept, and not
        # left behind (a 500 here used to leave the photo unlisted and unanswered).
        logger.error("could not list the kept photos, so %s is not kept: %r", name, exc)
        _delete(storage, name)
        raise PhotoNotKept(NOT_KEPT) from None
    # The session's latest photos, from the names (another tab's upload of this session included): the older go.
    let_go = {_name(owner, *old) for old in _owned(files, owner)[:-KEPT_PER_SESSION]}
    for old in sorted(let_go):
        _delete(storage, old)
    remove_expired(listing=[file for file in files if f"{FOLDER}/{file.removesuffix('.jpg')}" not in let_go])
    return _token(owner, stamp, nonce)


def load(request, token):
    """This session's photo ``token``: a KeptPhoto, or PhotoGone (expired: 410; let go for a newer one, or unknown
    here: 404, each with its message)."""
    session = request.session
    legacy = session.get(SESSION_KEY)
    uploaded = legacy.get(token) if isinstance(legacy, dict) else None
    if isinstance(uploaded, (int, float)) and math.isfinite(uploaded):  # int(inf) was a 500
        return _load(token, _legacy_name(token, uploaded), uploaded)
    let_go = session.get(LET_GO_KEY)
    if isinstance(let_go, list) and token in let_go:
        raise _let_go_for_newer()
    owner = _owner(session)
    read = _read_token(owner, token)
    if read is None:
        raise PhotoGone("This photo is not available here: photos are kept only for the browser that uploaded "
                        "them. Upload it again to search with it.", status=404)
    if session.get(OWNER_KEY) != owner:
        # keep()'s write of the owner id was lost to another request's save of the session (a page of another
        # tab): made again by the first use, or a login (a new session key) would lose this browser's photos.
        session[OWNER_KEY] = owner
    stamp, nonce = read

    def let_go(storage):
        try:
            files = _listing(storage)
        except Exception as exc:  # noqa: BLE001 (any storage's error)
            logger.warning("could not list the kept photos: %r", exc)
            return False
        return len([p for p in _owned(files, owner) if p > read]) >= KEPT_PER_SESSION

    return _load(token, _name(owner, stamp, nonce), stamp / 1_000_000, let_go=let_go)


def _load(token, name, uploaded, *, let_go=None):
    storage = upload_backend()
    if _expired(uploaded, time.time()):
        _delete(storage, name)
        raise PhotoGone(f"Your photo is no longer kept: photos are kept for {kept_for()} after the upload. "
                        "Upload it again to search with it.", status=410)
    try:
        with storage.open(name, "rb") as handle:
            data = handle.read()
        with storage.open(f"{name}.jpg", "rb") as handle:
            thumbnail = handle.read()
    except FileNotFoundError:  # swept at the deadline, let go for newer photos, or the storage was cleared
        if let_go is not None and let_go(storage):
            # This browser's own photo, let go for its newer ones: the message says so (a 404, as for a token
            # not kept here; "only for the browser that uploaded them" was wrong for it).
            raise _let_go_for_newer() from None
        raise PhotoGone("Your photo is no longer kept: the shop keeps a limited number of photos of all shoppers "
                        "at once. Upload it again to search with it.", status=410) from None
    except Exception as exc:  # noqa: BLE001 (EIO, EACCES; any storage's error: S3's are not OSError)
        logger.error("could not read the kept photo %s: %r", name, exc)
        raise PhotoUnreadable() from None
    return KeptPhoto(token=token, data=data, preview=_data_url(thumbnail))


def _let_go_for_newer():
    return PhotoGone(f"Your photo is no longer kept: this browser keeps its {KEPT_PER_SESSION} latest photos. "
                     "Upload it again to search with it.", status=404)


def _expired(uploaded, now, keep=None):
    """Whether a photo uploaded at ``uploaded`` (seconds) is no longer kept at ``now``: past its keeping time, or
    kept before this clock went back (``CLOCK_SLACK``)."""
    return now > uploaded + (keep_seconds() if keep is None else keep) or uploaded > now + CLOCK_SLACK


def _listing(storage):
    """The names of the files in the folder; a storage's error is raised (the caller says what it means)."""
    try:
        return storage.listdir(FOLDER)[1]
    except (FileNotFoundError, NotImplementedError):
        return []


def _uploaded(file):
    """The upload time (seconds) in the name of a photo this module kept, None for any other name."""
    match = _KEPT_NAME.fullmatch(file)
    if match:
        return int(match.group(1)) + int(match.group(2)) / 1_000_000
    match = _LEGACY_NAME.fullmatch(file)
    return float(match.group(1)) if match else None


def _owned(files, owner):
    """``[(stamp, nonce)]`` of ``owner``'s photos among the folder's names ``files``, the oldest first."""
    owned = []
    for file in files:
        match = _KEPT_NAME.fullmatch(file)
        if match and match.group(3) == owner:
            seconds, micros, _, nonce = match.groups()
            owned.append((int(seconds) * 1_000_000 + int(micros), bytes.fromhex(nonce)))
    return sorted(owned)


def remove_expired(*, now=None, listing=None):
    """Delete every kept photo older than ``PHOTO_KEEP_SECONDS``, whichever session sent it, and the oldest of
    the others beyond ``PHOTO_KEEP_MAX``; return how many. ``listing``: the folder's names, when the caller has
    just listed them.

    Only names this module writes are its own: another app's file in the folder is left as it is (a name
    such as "²-notes" made every upload a 500). A preview whose photo is gone (a delete cut short) goes
    when its time is past."""
    storage = upload_backend()
    now, keep = time.time() if now is None else now, keep_seconds()
    files = _listing(storage) if listing is None else listing
    names = set(files)
    kept, orphans = [], []
    for file in files:
        if not file.endswith(".jpg"):
            uploaded = _uploaded(file)
            if uploaded is not None:
                kept.append((uploaded, file))
        elif file[:-4] not in names:
            uploaded = _uploaded(file[:-4])
            if uploaded is not None and _expired(uploaded, now, keep):
                orphans.append(file[:-4])
    kept.sort()
    expired = [file for uploaded, file in kept if _expired(uploaded, now, keep)]
    fresh = [file for uploaded, file in kept if not _expired(uploaded, now, keep)]
    removed = expired + fresh[:max(len(fresh) - _most_kept(), 0)]
    for file in removed + orphans:
        _delete(storage, f"{FOLDER}/{file}")
    return len(removed)


def _most_kept():
    return max(int(app_settings.PHOTO_KEEP_MAX), 1)  # the photo just kept is one of them


def _delete(storage, name):
    for path in (name, f"{name}.jpg"):
        try:
            storage.delete(path)
        except OSError as exc:  # gone already: the goal is reached
            logger.debug("kept photo %s: %s", path, exc)


def _kept_files(data):
    """``(photo, preview)`` of an accepted photo, from one decoding: the copy that is kept, encoded anew
    (``public_copy``), its long side cut to ``KEPT_LONG_SIDE`` and never larger than the bytes sent (which
    the size limit accepted); and the small JPEG the page shows.

    A JPEG encoded anew at quality 95 can outgrow a smaller one sent (a browser's, at quality 80 say):
    then at lower qualities; the bytes as sent if none is smaller. The bytes as sent and no preview if
    they no longer decode under today's limits (keep() is given accepted bytes, and a changed limit
    must not lose the photo).
    """
    try:
        decoded = decode_image(data, **image_limits())
    except ImageRejected:
        return data, b""
    image = decoded.image
    preview = _jpeg(image, PREVIEW_SIZE)
    image.thumbnail((KEPT_LONG_SIDE, KEPT_LONG_SIDE))  # in place; an image within the bound is left as it is
    copy, extension = public_copy(Decoded(image=image, format=decoded.format))
    for quality in (85, 75):
        if len(copy) <= len(data) or extension != ".jpg":
            break
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        copy = buffer.getvalue()
    return (copy if len(copy) <= len(data) else data), preview


def _jpeg(image, size):
    thumb = image.copy()
    thumb.thumbnail((size, size))
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _data_url(jpeg):
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
