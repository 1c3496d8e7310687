"""A shopper's search photo, kept for a short while so the search can be refined, paged and filtered.

The photo is kept in the uploads' storage (``P2W_SEARCH["UPLOAD_STORAGE"]``, never served by
a URL) under a random token, with a small JPEG preview beside it. What is kept is a copy
encoded anew from the pixels, its long side at most ``KEPT_LONG_SIDE``: a few hundred kB
where the upload may be 10 MB, and nothing of the file but the picture (no EXIF, so no
phone's GPS position). Only the session that
uploaded it knows the token (the session holds its tokens and upload times, nothing else),
so a link to it opened elsewhere is refused. ``PHOTO_KEEP_SECONDS`` after the upload it is
refused with a message and deleted: at the first use after that, and by
``remove_expired()``, which every upload runs and which a periodic task may run too. It also
keeps the photos of all sessions together to ``PHOTO_KEEP_MAX``, the newest: per-address
budgets bound one shopper, this bounds the disk whatever the number of addresses.

    token = photos.keep(request, data)      # after load_image accepted the bytes
    kept = photos.load(request, token)      # KeptPhoto(token, data, preview) or PhotoGone
"""

import base64
import io
import logging
import secrets
import time
from dataclasses import dataclass

from django.core.files.base import ContentFile

from p2w_search.conf import app_settings, image_limits
from p2w_search.imaging import Decoded, ImageRejected, decode_image, public_copy
from p2w_search.uploads.storage import upload_backend

__all__ = ["KEPT_PER_SESSION", "PhotoGone", "PhotoNotKept", "KeptPhoto", "keep", "load", "remove_expired",
           "keep_seconds", "kept_for"]

logger = logging.getLogger(__name__)

SESSION_KEY = "p2w_photos"
LET_GO_KEY = "p2w_photos_let_go"  # tokens of this session's photos deleted for newer ones, the latest few
LET_GO_REMEMBERED = 20
FOLDER = "p2w-photos"
KEPT_PER_SESSION = 5  # a session's older photos are deleted when it uploads more: storage per shopper is bounded
PREVIEW_SIZE = 160
# The long side of the copy kept to search with: four times what a real CLIP's 224-pixel input needs.
KEPT_LONG_SIDE = 1024


class PhotoGone(Exception):
    """The photo cannot be used any more (``status`` 410) or was never this session's (404); ``reason`` says so."""

    def __init__(self, reason, *, status):
        super().__init__(reason)
        self.reason, self.status = reason, status


class PhotoNotKept(Exception):
    """The server could not keep the photo (its storage refused it): a 503, not the shopper's fault."""


NOT_KEPT = "The shop cannot keep your photo right now; try again in a few minutes."


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


def _name(token, uploaded):
    # The upload time is in the name, so the sweep needs no database and no file metadata.
    return f"{FOLDER}/{int(uploaded)}-{token}"


def keep(request, data):
    """Keep ``data`` (a photo's bytes that ``load_image`` accepted) for this session; return its token."""
    storage = upload_backend()
    token, uploaded = secrets.token_urlsafe(18), time.time()
    name = _name(token, uploaded)
    data, preview = _kept_files(data)
    try:
        storage.save(name, ContentFile(data))
        storage.save(f"{name}.jpg", ContentFile(preview))
    except OSError as exc:  # the storage refuses (a full disk): nothing half-written is left to the expiry sweep
        logger.error("could not keep a shopper's photo %s: %s", name, exc)
        _delete(storage, name)
        raise PhotoNotKept(NOT_KEPT) from None
    kept = dict(request.session.get(SESSION_KEY, {}))
    kept[token] = uploaded
    let_go = list(request.session.get(LET_GO_KEY, []))
    for old in sorted(kept, key=kept.get)[:-KEPT_PER_SESSION]:
        _delete(storage, _name(old, kept.pop(old)))
        let_go.append(old)
    request.session[SESSION_KEY] = kept
    if let_go:
        request.session[LET_GO_KEY] = let_go[-LET_GO_REMEMBERED:]
    remove_expired()
    return token


def load(request, token):
    """This session's photo ``token``: a KeptPhoto, or PhotoGone (expired: 410; let go for a newer one, or unknown
    here: 404, each with its message)."""
    uploaded = request.session.get(SESSION_KEY, {}).get(token)
    if uploaded is None and token in request.session.get(LET_GO_KEY, ()):
        # This browser's own photo, let go for a newer one: the message says so (404 as before for a token
        # not kept here; "only for the browser that uploaded them" was wrong for it).
        raise PhotoGone(f"Your photo is no longer kept: this browser keeps its {KEPT_PER_SESSION} latest photos. "
                        "Upload it again to search with it.", status=404)
    if uploaded is None:
        raise PhotoGone("This photo is not available here: photos are kept only for the browser that uploaded "
                        "them. Upload it again to search with it.", status=404)
    storage = upload_backend()
    name = _name(token, uploaded)
    if time.time() > uploaded + keep_seconds():
        _delete(storage, name)
        raise PhotoGone(f"Your photo is no longer kept: photos are kept for {kept_for()} after the upload. "
                        "Upload it again to search with it.", status=410)
    try:
        with storage.open(name, "rb") as handle:
            data = handle.read()
        with storage.open(f"{name}.jpg", "rb") as handle:
            thumbnail = handle.read()
    except OSError:  # swept at the deadline, let go for newer photos of other shoppers, or the storage was cleared
        raise PhotoGone("Your photo is no longer kept: the shop keeps a limited number of photos of all shoppers "
                        "at once. Upload it again to search with it.", status=410) from None
    return KeptPhoto(token=token, data=data, preview=_data_url(thumbnail))


def remove_expired(*, now=None):
    """Delete every kept photo older than ``PHOTO_KEEP_SECONDS``, whichever session sent it, and the oldest of
    the others beyond ``PHOTO_KEEP_MAX``; return how many."""
    storage = upload_backend()
    cutoff = (now or time.time()) - keep_seconds()
    try:
        _, files = storage.listdir(FOLDER)
    except (FileNotFoundError, NotImplementedError):
        return 0
    kept = sorted((int(file.split("-", 1)[0]), file) for file in files
                  if file.split("-", 1)[0].isdigit() and not file.endswith(".jpg"))
    fresh = [file for stamp, file in kept if stamp >= cutoff]
    removed = [file for stamp, file in kept if stamp < cutoff] + fresh[:max(len(fresh) - _most_kept(), 0)]
    for file in removed:
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
