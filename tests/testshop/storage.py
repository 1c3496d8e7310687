"""Where the test shop keeps its image files: a storage of its own, apart from the app's (MEDIA_ROOT, MEDIA_URL).

As a shop whose catalog images live on another storage (a bucket, a CDN) has them: a file
of a ShopImage is found, read and linked only through this storage, never the app's.
"""

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.utils.functional import cached_property

__all__ = ["ShopImageStorage", "shop_image_storage", "URL_PREFIX"]

URL_PREFIX = "/shop-images/"


class ShopImageStorage(FileSystemStorage):
    """Files under ``MEDIA_ROOT/shop-images`` (read when used, so a test's MEDIA_ROOT applies), served at /shop-images/."""

    @cached_property
    def base_location(self):
        return os.path.join(settings.MEDIA_ROOT, "shop-images")

    @cached_property
    def base_url(self):
        return URL_PREFIX


_storage = ShopImageStorage()


def shop_image_storage():
    return _storage
