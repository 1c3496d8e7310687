import re
from collections.abc import Mapping

from rest_framework import serializers

from p2w_search.uploads.manifest import sku_problem
from shop_demo.catalog.models import Product


class PriceField(serializers.DecimalField):
    """A decimal that, written as text, is ASCII digits with at most one dot (a sign before them allowed).

    Python's Decimal, which DRF's field uses, also reads "1_5" as 15, "1e3" as 1000 and digits of
    other scripts ("١٥"): a merchant's typo would become another price without a word.
    """

    plain = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")

    def to_internal_value(self, data):
        if isinstance(data, str) and not self.plain.fullmatch(data.strip()):
            self.fail("invalid")
        value = super().to_internal_value(data)
        return abs(value) if value == 0 else value  # "-0" is 0: the database stores it so, the answer says it so


class SkuField(serializers.CharField):
    """A SKU without characters no one sees (``sku_problem``: the import's check of each row, in its words).

    Checked here, before the field's validators, so a NUL is named and placed like the others
    rather than answered by DRF's "Null characters are not allowed."
    """

    def to_internal_value(self, data):
        sku = super().to_internal_value(data)
        problem = sku_problem(sku)
        if problem:
            raise serializers.ValidationError(problem, code="unseen")
        return sku


def price_field(**kwargs):
    """A product's price, as the API and the catalog import both accept it."""
    return PriceField(max_digits=10, decimal_places=2, min_value=0, **kwargs)


def currency_field(**kwargs):
    """A three-letter code in capitals, as the API and the catalog import both accept it."""
    return serializers.RegexField(r"^[A-Z]{3}$", error_messages={"invalid": "Give a three-letter currency code, "
                                                                            "e.g. EUR."}, **kwargs)


DESCRIPTION_MAX_LENGTH = 131_072  # a CSV manifest's cell holds as much (Python's csv limit)
# Why each read-only field stays as it is, said when a request gives it another value.
READ_ONLY_REASONS = {"id": "the shop gives each product its id", "merchant": "a product stays in the catalog of the "
                                                                             "merchant that added it"}


class ProductSerializer(serializers.ModelSerializer):
    """A product as search results and the product API show it; writes are checked as an import row is.

    ``context["merchant"]``: whose catalog a new product joins (an update keeps the product's own), so
    that a SKU the merchant already has is refused by name instead of failing in the database.
    """

    merchant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    price = price_field()
    currency = currency_field(required=False)

    class Meta:
        model = Product
        fields = ["id", "sku", "title", "description", "category", "price", "currency", "in_stock", "merchant"]
        # Every list and search result that shows the product carries its description.
        extra_kwargs = {"description": {"max_length": DESCRIPTION_MAX_LENGTH}}

    def build_standard_field(self, field_name, model_field):
        """The model's fields as DRF builds them (max_length and all), but ``sku`` as a SkuField."""
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        return (SkuField if field_name == "sku" else field_class), kwargs

    def to_internal_value(self, data):
        """The written fields; a key that is no writable field is a 400 naming it, with the other fields' errors.

        DRF leaves such keys out without a word: ``{"listed": false}`` or ``{"merchant": "rival"}``
        answered 200 and changed nothing. A read-only field may come back as the product shows it
        (a PUT of what a GET answered).
        """
        problems = self._unwritable(data) if isinstance(data, Mapping) else {}
        try:
            values = super().to_internal_value(data)
        except serializers.ValidationError as error:
            raise serializers.ValidationError({**problems, **error.detail}) from None
        if problems:
            raise serializers.ValidationError(problems)
        return values

    def _unwritable(self, data):
        """``{key: [reason]}`` for the keys of ``data`` that are unknown, or read-only and not the product's value."""
        writable = sorted(name for name, field in self.fields.items() if not field.read_only)
        shown = self._shown()
        problems = {}
        for key in data:
            if key not in self.fields and key != "csrfmiddlewaretoken":  # the browsable API's form sends its token
                problems[key] = [f"Unknown field; the fields a request may write are: {', '.join(writable)}."]
            elif key in self.fields and self.fields[key].read_only and (
                    key not in shown or str(data[key]) != str(shown[key])):
                reason = READ_ONLY_REASONS.get(key, "the shop sets it")
                whose = "this product's" if self.instance is not None else "a new product's"
                problems[key] = [f"This field is read-only ({reason})"
                                 + (f": {whose} is {shown[key]!r}." if key in shown else ".")]
        return problems

    def _shown(self):
        """The read-only fields' values as this product shows them (a new one: its merchant's)."""
        if self.instance is not None:
            return {"id": self.instance.pk, "merchant": self.instance.merchant.slug}
        merchant = self.context.get("merchant")
        return {"merchant": merchant.slug} if merchant is not None else {}

    def update(self, instance, validated_data):
        """Write only the fields the request gives: saving the whole row, a PATCH of the price wrote back the
        title it had read, which an import or another request may have changed since (a lost update)."""
        for field, value in validated_data.items():
            setattr(instance, field, value)
        instance.save(update_fields=list(validated_data))
        return instance

    def validate_sku(self, sku):
        """Refuse a SKU the merchant has, or has written in other Unicode code points that read the same (``café``
        composed and decomposed), or a new one that looks the same as one it has in other letters (``А-1`` in
        Cyrillic beside ``A-1``, as an import refuses it): two products that no one can tell apart by their SKU."""
        merchant = self.instance.merchant if self.instance else self.context.get("merchant")
        if merchant is None:
            return sku
        others = Product.objects.filter(merchant=merchant)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        found = list(others.reading_as([sku]).values_list("sku", flat=True))
        if sku in found:
            raise serializers.ValidationError(DUPLICATE_SKU)
        if found:
            raise serializers.ValidationError(same_looking_sku(found[0]))
        if self.instance is None or self.instance.sku != sku:  # a product's own SKU, sent again, stays
            look_alike = others.look_alike_reason(sku)
            if look_alike:
                raise serializers.ValidationError(look_alike, code="look_alike")
        return sku


DUPLICATE_SKU = "You already have a product with this sku."


def same_looking_sku(found=None):
    """The refusal of a SKU that reads as ``found``, one the merchant has (None: which one is not known)."""
    which = "" if found is None else f" ({found!r})"
    return (f"You already have a product with a sku that reads the same, written in other Unicode code "
            f"points{which}; give that one, or another sku.")
