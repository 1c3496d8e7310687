"""How one row of a merchant's catalog upload becomes a product of the demo shop."""

from django.db import IntegrityError, transaction
from rest_framework import serializers

from p2w_search.uploads.manifest import sku_key
from shop_demo.catalog.models import Merchant, Product, sku_taken
from shop_demo.catalog.serializers import DESCRIPTION_MAX_LENGTH, currency_field, price_field


class ProductImportSerializer(serializers.Serializer):
    """One manifest row; ``save(merchant=...)`` creates or updates the product with that SKU.

    The import's contract (p2w_search/uploads/importer.py): ``save_rows(merchant, rows)``
    (many rows at once, optional), ``merchant_for(user)``,
    ``merchant_by_key(key)``, ``listed_skus(merchant)`` and ``unlist(merchant, skus)``.
    Optional, for the merchant pages (p2w_search/merchant/): ``products(merchant)`` (their
    catalog at a glance), ``merchants_for_staff(user)`` (whom staff may act for) and
    ``example_row()`` (the template CSV's example). The fields' ``help_text`` explains each
    column on the upload page.
    """

    sku = serializers.CharField(max_length=64, help_text="Your own code for the product, unique in your catalog. "
                                                         "A row with a SKU you already have updates that product.")
    title = serializers.CharField(max_length=200, help_text="The product's name, as shoppers see it.")
    # The optional columns have no default here: a row that leaves one out (or its cell empty) keeps an existing
    # product's value, and a new product gets the model's default (no description, EUR, in stock).
    # As long as a CSV cell holds, in JSON Lines too: the product API's bound (every result showing it carries it).
    description = serializers.CharField(required=False, allow_blank=True, max_length=DESCRIPTION_MAX_LENGTH,
                                        help_text="A longer text about the product. Left out or empty: a product "
                                                  "you already have keeps its description.")
    category = serializers.CharField(max_length=64, help_text="One word or two, e.g. dress, sneaker, mug.")
    price = price_field(help_text="With a dot before the cents, no currency sign: 19.99.")
    currency = currency_field(required=False,
                              help_text="A three-letter code in capitals: EUR, USD, GBP. Left out or empty: EUR "
                                        "for a new product; one you already have keeps its currency.")
    in_stock = serializers.BooleanField(required=False,
                                        help_text="yes/no and 1/0 are read too. Left out or empty: a new product "
                                                  "is in stock; one you already have stays as it is.")
    images = serializers.ListField(child=serializers.CharField(max_length=300), min_length=1,
                                   error_messages={"min_length": "Name at least one image."},
                                   help_text="The file names of the product's photos in your zip (or among the "
                                             "images you upload), the main one first.")

    def save(self, *, merchant):
        return self.save_rows(merchant, [self.validated_data])[0]

    @classmethod
    def save_rows(cls, merchant, rows):
        """Create or update the products of many validated rows in three queries; return them in order.

        The import hands each chunk of rows here (SKUs are unique among them: a SKU on two
        rows rejects both), so a catalog costs a few queries per hundred rows, not three per row.
        A row's SKU matches a product whose SKU reads the same (``sku_key``: ``café`` composed or
        decomposed), which keeps its SKU as first written; the (merchant, NFC of the SKU) index
        finds them.
        The products are locked as they are read (the UPDATE would lock them until the import
        commits anyway): a product API edit or delete that commits between the read and the
        UPDATE would be written over with the values read, or leave the import updating a
        product that is gone. A SKU the API added since the read is read again and updated,
        once: rows that a second read does not explain (two of them reading the same, which the
        import never hands here) raise the IntegrityError, where they were tried again forever.
        """
        return cls._save_rows(merchant, rows, read_again=True)

    @classmethod
    def _save_rows(cls, merchant, rows, *, read_again):
        existing = {sku_key(product.sku): product for product in Product.objects.select_for_update().filter(
            merchant=merchant).reading_as([row["sku"] for row in rows])}
        products, new, changed = [], [], []
        for row in rows:
            values = {key: value for key, value in row.items() if key not in ("sku", "images")}
            product = existing.get(sku_key(row["sku"]))
            if product is None:
                product = Product(merchant=merchant, sku=row["sku"], **values)
                new.append(product)
            else:
                for key, value in values.items():
                    setattr(product, key, value)
                changed.append(product)
            product.listed = True
            products.append(product)
        try:
            with transaction.atomic():  # a savepoint: only this INSERT is undone when a SKU was added meanwhile
                Product.objects.bulk_create(new)
        except IntegrityError as error:
            if not (sku_taken(error) and read_again):
                raise
            return cls._save_rows(merchant, rows, read_again=False)
        if changed:  # every field a row gave, but its SKU and images
            fields = sorted({key for row in rows for key in row} - {"sku", "images"})
            Product.objects.bulk_update(changed, [*fields, "listed"])
        return products

    @classmethod
    def merchant_for(cls, user):
        return Merchant.objects.filter(user=user).first() if user.is_authenticated else None

    @classmethod
    def merchant_by_key(cls, key):
        return Merchant.objects.get(pk=key)

    @classmethod
    def listed_skus(cls, merchant):
        """The SKUs of the merchant's products that shoppers see, as stored (the import compares them in NFC)."""
        return Product.objects.filter(merchant=merchant, listed=True).values_list("sku", flat=True)

    @classmethod
    def catalog_skus(cls, merchant):
        """All the merchant's SKUs, listed or not, as stored: an import refuses a new SKU that looks the same as one
        (p2w_search.uploads.look_alike), an unlisted product's too."""
        return Product.objects.filter(merchant=merchant).values_list("sku", flat=True)

    @classmethod
    def unlist(cls, merchant, skus):
        """Unlist the merchant's products with these SKUs (as ``listed_skus`` gave them); return how many were
        listed."""
        return Product.objects.filter(merchant=merchant, listed=True, sku__in=skus).update(listed=False)

    @classmethod
    def products(cls, merchant):
        """All of the merchant's products, listed or not (a QuerySet of the product model)."""
        return Product.objects.filter(merchant=merchant)

    @classmethod
    def merchants_for_staff(cls, user):
        """The merchants staff member ``user`` may act for on the merchant pages: all, if it may add and change
        products; none otherwise.

        An upload does both (and a full sync unlists), so acting for a merchant needs what the admin needs for it.
        """
        if user.is_staff and user.has_perms(["catalog.add_product", "catalog.change_product"]):
            return Merchant.objects.order_by("name", "pk")
        return Merchant.objects.none()

    @classmethod
    def example_row(cls):
        """One row that the template CSV shows, as a merchant would write it."""
        return {"sku": "TEE-0001", "title": "Red striped t-shirt", "description": "Soft cotton, regular fit.",
                "category": "t-shirt", "price": "19.99", "currency": "EUR", "in_stock": "true",
                "images": "tee-0001-front.jpg;tee-0001-back.jpg"}
