"""The files of product images: the copy of an upload that is served, where a file lives, its public URL.

No model is imported here: models.py, the importer and the index use these without a circle.
"""

import hashlib
import logging

from django.apps import apps
from django.core.files.base import ContentFile

from p2w_search.conf import app_settings, image_limits
from p2w_search.imaging import decode_image, load_image, public_copy

__all__ = ["read_query_photo", "public_file", "base_name", "short_stem", "shop_image_storage", "storage_of",
           "image_url", "delete_each"]

logger = logging.getLogger(__name__)


def read_query_photo(upload):
    """The bytes of a photo uploaded to search with, checked against the app's image limits.

    Raises ImageRejected (``reason`` in plain words) for a file the search cannot use.
    """
    data = upload.read(app_settings.MAX_IMAGE_BYTES + 1)  # load_image rejects anything longer
    load_image(data, **image_limits())
    return data


def public_file(data, name):
    """Return ``(sha256, ContentFile)``: the upload's hash and the copy of it that is served.

    Raises ImageRejected when ``data`` is not an image the app accepts.
    """
    copy, extension = public_copy(decode_image(data, **image_limits()))
    return hashlib.sha256(data).hexdigest(), ContentFile(copy, name=f"{short_stem(name, 'image')}{extension}")


# File systems allow 255 bytes a name, and a storage may add "_" and 7 characters to keep two names apart:
# an uploader's name is cut well below that, in bytes of UTF-8 ("é" is two), at a character's edge.
STEM_BYTES = 120


def base_name(name):
    """``name`` without its folder, whether it was written with ``/`` or ``\\``."""
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def short_stem(name, default):
    """``name`` without its folder and extension, cut to STEM_BYTES bytes; ``default`` when nothing of it
    is a letter or a digit (a stored ``!!!.png`` would be the hidden file ``.png``)."""
    stem = base_name(name).rsplit(".", 1)[0]
    stem = stem.encode()[:STEM_BYTES].decode(errors="ignore")
    return stem if any(character.isalnum() for character in stem) else default


def shop_image_storage():
    """The storage of the shop's own image files (``IMAGE_MODEL``'s file field)."""
    setting = app_settings.IMAGE_MODEL
    return apps.get_model(setting["MODEL"])._meta.get_field(setting.get("FILE", "image")).storage


def storage_of(image):
    """Where ``image``'s file is: the shop's image storage for a mirrored image, this app's otherwise."""
    return shop_image_storage() if image.source_pk else image.file.storage


def image_url(image):
    """The public URL of ``image``'s file."""
    return storage_of(image).url(image.file.name)


def delete_each(storage, names):
    """Delete the files ``names`` from ``storage``, logging each that it refuses; return how many went."""
    deleted = 0
    for name in names:
        try:
            storage.delete(name)
        except Exception as exc:  # any storage's error (a full disk, an object store out of reach)
            logger.warning("could not delete the file %s: %s", name, exc)
        else:
            deleted += 1
    return deleted
