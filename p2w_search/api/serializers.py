"""Request parameters and result shapes of the search API."""

import csv

from django.utils.module_loading import import_string
from rest_framework import serializers

from p2w_search.api.parameters import whole_number
from p2w_search.composition import DEFAULT_METHOD, METHODS, check_change
from p2w_search.conf import app_settings
from p2w_search.files import read_query_photo
from p2w_search.imaging import ImageRejected

__all__ = [
    "WholeNumberField",
    "ProductIdField",
    "SearchParams",
    "TextSearchParams",
    "ImageSearchParams",
    "SimilarParams",
    "ComposedSearchParams",
    "SearchResultSerializer",
    "product_serializer_class",
]


class WholeNumberField(serializers.IntegerField):
    """DRF's IntegerField, read by ``whole_number``: ``signed`` for an id, not for a count."""

    default_error_messages = {
        "invalid": "A valid integer is required. Write it in the digits 0-9 only, e.g. 12.",
        "invalid_signed": "A valid integer is required. Write it in the digits 0-9 only (a minus sign before "
                          "them for a negative one), e.g. 12.",
    }

    def __init__(self, *, signed=False, **kwargs):
        self.signed = signed
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return whole_number(data, signed=self.signed)
        except ValueError:
            self.fail("invalid_signed" if self.signed else "invalid")


class ProductIdField(serializers.CharField):
    """A product's key, typed as the shop's product model's primary key (integer, UUID, text ...)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        from p2w_search.search import Rejected, parse_product_id

        try:  # as text (a JSON 12 is "12": no UUID), as sent, not stripped (" 5" is no integer key)
            return parse_product_id(super().to_internal_value(data))
        except Rejected as exc:
            raise serializers.ValidationError(exc.reason) from None


class SearchParams(serializers.Serializer):
    k = WholeNumberField(required=False, min_value=1, help_text="How many products to return in all.")
    exclude = serializers.CharField(
        required=False, help_text=('Comma-separated ids of products to leave out of the results; an id with a comma '
                                   'in double quotes, as in a CSV line: 12,"tee, red".')
    )

    def validate_k(self, value):
        if value > app_settings.MAX_K:
            raise serializers.ValidationError(f"Ensure this value is less than or equal to {app_settings.MAX_K}.")
        return value

    def validate_exclude(self, value):
        from p2w_search.search import Rejected, parse_product_id

        try:  # one CSV line, so that a shop's text keys may hold commas ("tee, red" in double quotes)
            parts = next(csv.reader([value], skipinitialspace=True, strict=True), [])
        except csv.Error:
            raise serializers.ValidationError(
                'Give product ids separated by commas, an id with a comma or a quote in double quotes ("tee, red"; '
                'a quote inside doubled: "the ""best"" tee").') from None
        try:
            return [parse_product_id(part.strip()) for part in parts if part.strip()]
        except Rejected as exc:  # which one, in the shop's key type (12, a UUID, a slug ...)
            raise serializers.ValidationError(f"{exc.reason} Give product ids separated by commas.") from None

    def validate(self, attrs):
        attrs.setdefault("k", app_settings.DEFAULT_K)
        attrs.setdefault("exclude", [])
        return attrs


class TextSearchParams(SearchParams):
    q = serializers.CharField(max_length=500, help_text="What the shopper looks for, in words.")


class ImageSearchParams(SearchParams):
    image = serializers.FileField(required=False, help_text="An uploaded photo (multipart).")
    image_id = WholeNumberField(required=False, signed=True, help_text="Or the id of a product image in the catalog.")

    def validate_image(self, upload):
        try:
            return read_query_photo(upload)
        except ImageRejected as exc:
            raise serializers.ValidationError(f"The image cannot be used: {exc.reason}.") from None

    def validate(self, attrs):
        attrs = super().validate(attrs)
        given = [name for name in ("image", "image_id") if attrs.get(name) is not None]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"image": ["Send exactly one of 'image' (an uploaded file) or 'image_id'."]}
            )
        return attrs


class ComposedSearchParams(ImageSearchParams):
    """A reference (a product, a catalog image, or an upload) and how to change it."""

    product = ProductIdField(required=False, help_text="Id of the reference product.")
    text = serializers.CharField(max_length=300, help_text='The change, e.g. "in red" or "with polka dots".')
    method = serializers.ChoiceField(
        choices=METHODS, default=DEFAULT_METHOD,
        help_text="pic2word_plus_image (the default: pic2word plus the reference's own embedding times the "
        "model's IMAGE_WEIGHT), pic2word (the paper's method), a baseline (image_only, text_only, "
        "image_plus_text), or fusion (pic2word + image_plus_text).",
    )
    prompt = serializers.CharField(required=False, help_text="Name of a prompt template in P2W_SEARCH['PROMPTS'].")

    def validate_text(self, value):
        try:
            check_change(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate_prompt(self, value):
        if value not in app_settings.PROMPTS:
            raise serializers.ValidationError(f"Unknown prompt; choose one of: {', '.join(app_settings.PROMPTS)}.")
        return value

    def validate(self, attrs):
        given = [name for name in ("image", "image_id", "product") if attrs.get(name) is not None]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"product": ["Send exactly one reference: 'product', 'image_id' or 'image' (an uploaded file)."]}
            )
        return SearchParams.validate(self, attrs)


class SimilarParams(SearchParams):
    product = ProductIdField(help_text="Id of the product to find similar ones to.")


def product_serializer_class():
    """Return the serializer of product data in results (``PRODUCT_SERIALIZER`` or all fields)."""
    path = app_settings.PRODUCT_SERIALIZER
    if path:
        return import_string(path)
    from django.apps import apps

    from p2w_search.conf import product_model_label

    model = apps.get_model(product_model_label())
    meta = type("Meta", (), {"model": model, "fields": "__all__"})
    return type("ProductSerializer", (serializers.ModelSerializer,), {"Meta": meta})


class ImageRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()


class SearchResultSerializer(serializers.Serializer):
    """One hit: a product, the image of it that matched best, and the cosine similarity."""

    score = serializers.FloatField()
    image = ImageRefSerializer()

    def get_fields(self):
        # The shop's product serializer as a nested field: built once per response, not once per
        # result (a ModelSerializer's field building cost 0.7 ms a result; bench/query_latency.py).
        fields = super().get_fields()
        fields["product"] = product_serializer_class()()
        return fields
