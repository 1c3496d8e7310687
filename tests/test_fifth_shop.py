"""What a fifth shop's conventions broke, beyond the demo's, tests/testshop's, Oscar's, the third and fourth shops'.

The shop these were found with (a scratch project, not kept) is shaped like Saleor's catalog: products keyed by
integers and addressed by slugs, with variants whose price and stock are on their listing in a sales channel;
what shoppers may see is a join (a product's listing in the shop's channel, published and visible in listings),
so ``SEARCH_FILTER`` runs across a multi-valued relation; and one media model for a product's images and videos
(``type`` "IMAGE" or "VIDEO", ``sort_order``, ``alt``), where a video is a link to a video host. Indexing, the
workers, every search, filters on the variants' prices, the results' serializer, ``{% like_this %}`` and the
admin's index page worked with them; what did not is pinned here, on the demo's settings.
"""

import pytest
from django.db import connection, models

from p2w_search import checks, shop_images
from p2w_search.models import ProductImage
from tests.factories import ProductFactory
from tests.test_third_shop import shop_image_model


@pytest.fixture
def media_model(settings, monkeypatch):
    """The shop's media model (``tests.ShopPhoto`` with a ``type``), named in ``IMAGE_MODEL`` with ``filter``."""
    model = shop_image_model(type=models.CharField(max_length=32, default="IMAGE"),
                             picture=models.FileField(upload_to="pictures/", blank=True, null=True))
    get_model = shop_images.apps.get_model
    monkeypatch.setattr(shop_images.apps, "get_model", lambda label, *args, **kwargs: (
        model if label == "tests.ShopPhoto" else get_model(label, *args, **kwargs)))

    def configure(**image_filter):
        settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_MODEL": {
            "MODEL": "tests.ShopPhoto", "FILE": "picture", "ORDER": "rank", **image_filter}}
        return model

    return configure


@pytest.fixture
def media_table(db, media_model):
    """``media_model`` with a table, in the test's transaction (rolled back with it)."""
    def create(**image_filter):
        model = media_model(**image_filter)
        with connection.schema_editor() as editor:
            editor.create_model(model)
        return model

    return create


def mirrors():
    return sorted(ProductImage.objects.exclude(source_pk="").values_list("source_pk", "file"))


def test_the_rows_of_a_media_model_that_are_no_images_are_not_mirrored(media_table):
    """A media model that holds videos as well as images (Saleor's ``ProductMedia``): a video whose file field
    held a file (an uploaded clip) was mirrored and embedded, and failed for ever ("not a recognised image
    format"), an H010 warning on the admin's index page and in ``doctor`` that no retry could clear.
    ``IMAGE_MODEL["FILTER"]`` names the rows that are images, with field lookups as ``SEARCH_FILTER`` does."""
    media = media_table(FILTER={"type": "IMAGE"})
    product = ProductFactory()
    media.objects.create(pk=1, product=product, picture="pictures/front.png", rank=1)
    media.objects.create(pk=2, product=product, picture="pictures/clip.mp4", rank=0, type="VIDEO")
    media.objects.create(pk=3, product=product, picture=None, rank=2, type="VIDEO")  # a link to a video host
    assert shop_images.sync() == {"created": 1, "changed": 0, "deleted": 0, "unchanged": 0, "failed": 0}
    assert mirrors() == [("1", "pictures/front.png")]


def test_a_row_that_stops_being_an_image_loses_its_mirror(media_table, django_capture_on_commit_callbacks):
    """Whether the row was changed where no signal saw it (the sweep's sync) or saved (the save signal)."""
    media = media_table(FILTER={"type": "IMAGE"})
    product = ProductFactory()
    first = media.objects.create(pk=1, product=product, picture="pictures/front.png")
    second = media.objects.create(pk=2, product=product, picture="pictures/back.png")
    assert shop_images.sync()["created"] == 2
    media.objects.filter(pk=1).update(type="VIDEO")
    assert shop_images.sync() == {"created": 0, "changed": 0, "deleted": 1, "unchanged": 1, "failed": 0}
    second.type = "VIDEO"
    second.save()
    with django_capture_on_commit_callbacks(execute=True):
        shop_images._saved(media, second)
    assert mirrors() == []
    first.type = "IMAGE"
    first.save()
    assert shop_images.mirror(first).source_pk == "1" and mirrors() == [("1", "pictures/front.png")]


def test_a_filter_across_a_multi_valued_relation_mirrors_each_image_once(media_table):
    """Lookups through a relation with several matching rows (``{"product__channel_listings__is_published": True}``
    with two channels; here the merchant's products) return an image once per match: a new image was counted as
    created once per match."""
    media = media_table(FILTER={"product__merchant__products__isnull": False, "type": "IMAGE"})
    product = ProductFactory()
    media.objects.create(pk=1, product=product, picture="pictures/front.png")
    media.objects.create(pk=2, product=ProductFactory(merchant=product.merchant), picture="pictures/side.png")
    assert shop_images.sync() == {"created": 2, "changed": 0, "deleted": 0, "unchanged": 0, "failed": 0}


def test_without_a_filter_every_row_with_a_file_is_an_image(media_table):
    media = media_table()
    product = ProductFactory()
    media.objects.create(pk=1, product=product, picture="pictures/front.png")
    media.objects.create(pk=2, product=product, picture="", type="VIDEO")  # no file: nothing to search by
    assert shop_images.sync()["created"] == 1 and mirrors() == [("1", "pictures/front.png")]


@pytest.mark.parametrize("image_filter, reason", [
    ({"kind": "IMAGE"}, "{'kind': 'IMAGE'} cannot filter tests.ShopPhoto: Cannot resolve keyword 'kind' into "
                        "field. Choices are: id, picture, product, product_id, rank, type"),
    ({"rank__gt": "first"}, "{'rank__gt': 'first'} cannot filter tests.ShopPhoto: Field 'rank' expected a number "
                            "but got 'first'."),
    ("IMAGE", "must be a dict of field lookups of tests.ShopPhoto that its images match, e.g. {'type': 'IMAGE'}, "
              "not 'IMAGE'."),
])
def test_a_filter_the_media_model_cannot_take_is_E015(media_model, image_filter, reason):
    """A filter that fails to build failed every sync and every save of the shop's images, each in a traceback."""
    media_model(FILTER=image_filter)
    assert [(m.id, m.msg) for m in checks.check_settings()] == [
        ("p2w_search.E015", f"P2W_SEARCH['IMAGE_MODEL']['FILTER'] {reason}")]


def test_a_filter_the_media_model_takes_passes_the_checks(media_model):
    media_model(FILTER={"type": "IMAGE", "picture__isnull": False})
    assert checks.check_settings() == []
