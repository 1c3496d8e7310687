"""An Oscar catalog built the Oscar way (its own models and tree API), and the index over it.

Each product has one picture of one colour, so the tiny random test CLIP tells them apart;
prices and stock are on Oscar's ``StockRecord``; a parent product's are its variants'.
"""

import io
from decimal import Decimal

from django.core.files.base import ContentFile
from django.core.management import call_command
from oscar.core.loading import get_model
from PIL import Image

from p2w_search import indexing
from p2w_search.models import ImageEmbedding

__all__ = [
    "Category",
    "Partner",
    "Product",
    "ProductClass",
    "ProductImage",
    "Shop",
    "StockRecord",
    "embed_here",
    "png",
]

Category = get_model("catalogue", "Category")
Partner = get_model("partner", "Partner")
Product = get_model("catalogue", "Product")
ProductClass = get_model("catalogue", "ProductClass")
ProductImage = get_model("catalogue", "ProductImage")
StockRecord = get_model("partner", "StockRecord")


def png(colour, size=(40, 40)):
    """The bytes of a PNG of one colour (tests/factories.py has the same, beside the demo's models)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


class Shop:
    """A product class, a partner and helpers to add categories, products, variants and images."""

    def __init__(self):
        self.product_class = ProductClass.objects.create(name="Clothing", requires_shipping=True, track_stock=True)
        self.partner = Partner.objects.create(name="Warehouse")
        self._skus = 0

    def tree(self):
        """Clothing > Tops > Shirts, Clothing > Dresses, and Home > Mugs: ``{name: Category}``."""
        clothing = Category.add_root(name="Clothing")
        tops = clothing.add_child(name="Tops")
        shirts = tops.add_child(name="Shirts")
        dresses = clothing.add_child(name="Dresses")
        home = Category.add_root(name="Home")
        mugs = home.add_child(name="Mugs")
        return {c.name: c for c in (clothing, tops, shirts, dresses, home, mugs)}

    def product(self, title, *, category=None, price=None, stock=0, colour=None, public=True, structure="standalone"):
        """A product with a stock record (when ``price`` is given) and one image of ``colour``."""
        product = Product.objects.create(title=title, product_class=self.product_class, structure=structure,
                                         is_public=public)
        if category is not None:
            product.categories.add(category)
        if price is not None:
            self.stock(product, price, stock)
        if colour is not None:
            self.image(product, colour)
        return product

    def variant(self, parent, title, *, price, stock):
        """A child product of ``parent`` with its own stock record and no image (Oscar shows the parent's)."""
        child = Product.objects.create(title=title, parent=parent, structure=Product.CHILD)
        self.stock(child, price, stock)
        return child

    def stock(self, product, price, stock):
        self._skus += 1
        return StockRecord.objects.create(product=product, partner=self.partner, partner_sku=f"SKU-{self._skus}",
                                          price=Decimal(str(price)), num_in_stock=stock)

    def image(self, product, colour, *, order=0):
        return ProductImage.objects.create(product=product, original=ContentFile(png(colour), name="photo.png"),
                                           display_order=order)


def embed_here():
    """Index the catalog as a shop indexes its existing one (``p2w_index sync`` then ``embed``), embedding here.

    For tests inside one transaction, where nothing commits and no worker would see the rows.
    Returns the serving model.
    """
    call_command("p2w_index", "sync", verbosity=0)
    model = indexing.register_model()
    indexing.queue_missing(model)
    pending = list(ImageEmbedding.objects.filter(model=model, state="pending").values_list("pk", flat=True))
    indexing.embed_pending(model.pk, pending)
    return model
