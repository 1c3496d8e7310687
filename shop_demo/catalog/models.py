"""The demo shop's own catalog: merchants and their products (p2w_search is pointed at Product)."""

from django.conf import settings
from django.db import models

from p2w_search.uploads.look_alike import UNPLAIN_SKU_REGEX, catalog_look_alike
from p2w_search.uploads.manifest import seen_sku, sku_key

# The constraints that keep one product per SKU of a merchant: as written, and as it reads (NFC).
SKU_CONSTRAINTS = ("catalog_unique_merchant_sku", "catalog_unique_merchant_sku_nfc")
SAME_LOOKING_IN_ADMIN = ("This merchant has a product whose SKU reads the same (the same letters, maybe written in "
                         "other Unicode code points); give that one, or another SKU.")


class NFC(models.Func):
    """PostgreSQL's ``normalize(text, NFC)``: ``sku_key`` in SQL. IMMUTABLE, so an index may hold it."""

    template = "normalize(%(expressions)s, NFC)"
    output_field = models.CharField()


class Merchant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="merchant"
    )

    def __str__(self):
        return self.name


class ProductQuerySet(models.QuerySet):
    def reading_as(self, skus):
        """The products whose SKU reads as one of ``skus`` (compared in NFC, ``sku_key``).

        Filtered by merchant too, it is read through the (merchant, NFC of the SKU) index.
        """
        return self.alias(sku_nfc=NFC("sku")).filter(sku_nfc__in=[sku_key(sku) for sku in skus])

    def look_alike_reason(self, sku):
        """Why ``sku`` cannot name another product among these (a merchant's others): it looks the same as one of
        their SKUs written in other characters (``А-1`` in Cyrillic letters beside ``A-1``), in the import's words
        (``look_alike.catalog_look_alike``); None when it looks like none. Reads only the SKU it is seen as and the
        SKUs outside printable ASCII."""
        candidates = self.filter(models.Q(sku=seen_sku(sku)) | models.Q(sku__regex=UNPLAIN_SKU_REGEX))
        return catalog_look_alike(sku, candidates.values_list("sku", flat=True).iterator())


def sku_taken(error):
    """Whether the IntegrityError ``error`` refuses a SKU the merchant has, written alike or reading the same."""
    return any(name in str(error) for name in SKU_CONSTRAINTS)


def sku_reads_the_same(error):
    """Whether the IntegrityError ``error`` is the NFC constraint's: a SKU that reads as one the merchant has, written
    in other code points (PostgreSQL names the constraint the row broke)."""
    return getattr(getattr(error.__cause__, "diag", None), "constraint_name", None) == SKU_CONSTRAINTS[1]


class Product(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="products")
    sku = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=64, db_index=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    in_stock = models.BooleanField(default=True)
    listed = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "sku"], name=SKU_CONSTRAINTS[0]),
            # Two writers at once (an import and the product API) pass their checks: the database holds the promise
            # that SKUs that read the same are one product. Its index also finds an import's products by NFC.
            models.UniqueConstraint(models.F("merchant"), NFC("sku"), name=SKU_CONSTRAINTS[1],
                                    violation_error_message=SAME_LOOKING_IN_ADMIN),
        ]
        indexes = [
            # look_alike_reason's SKUs outside printable ASCII, few in most catalogs, read by this index: each write of
            # the product API scanned the merchant's every SKU with the regex (100,000 products: 70 ms, now 5.8 ms;
            # bench/run upload_check).
            models.Index(fields=["merchant", "sku"], condition=models.Q(sku__regex=UNPLAIN_SKU_REGEX),
                         name="catalog_product_unplain_sku"),
        ]

    def __str__(self):
        return f"{self.sku} {self.title}"
