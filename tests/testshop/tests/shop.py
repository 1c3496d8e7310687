"""The test shop's catalog for tests: a category tree, brands keyed by slug, UUID products, stock records, images.

    home ─┬─ lighting ── lamps
          └─ textiles
    garden

| product         | brand | categories        | stock records (price, in stock) | published |
| --------------- | ----- | ----------------- | ------------------------------- | --------- |
| red lamp        | acme  | lamps             | (30.00, 5)                      | yes       |
| blue lamp       | north | lamps             | (55.00, 0)                      | yes       |
| green light     | acme  | lighting          | (80.00, 2), (70.00, 0)          | yes       |
| yellow cushion  | north | textiles          | (15.50, 10)                     | yes       |
| white rug       | acme  | textiles, garden  | (120.00, 1)                     | yes       |
| black planter   | north | garden            | (25.00, 7)                      | yes       |
| orange stool    | acme  | -                 | -                               | yes       |
| purple lamp     | acme  | lamps             | (10.00, 3)                      | no        |

Each product has one image of its colour (a ShopImage), mirrored into the index by the
app's signals when the transaction commits.
"""

import io
from dataclasses import dataclass
from decimal import Decimal

from django.core.files.base import ContentFile
from PIL import Image

from p2w_search import index, indexing
from p2w_search.models import EmbeddingModel, ImageEmbedding
from tests.testshop.models import Brand, Category, Product, ShopImage, StockRecord, User

__all__ = ["COLOURS", "PRODUCTS", "Catalog", "png", "build", "load", "clear", "add_image", "embed_pending"]

COLOURS = {"red": (220, 20, 20), "blue": (20, 40, 220), "green": (20, 200, 40), "yellow": (240, 220, 20),
           "white": (245, 245, 245), "black": (10, 10, 10), "orange": (250, 140, 0), "purple": (140, 20, 160)}
PRODUCTS = [
    # name, brand, categories, stock records, published
    ("red lamp", "acme", ["lamps"], [("30.00", 5)], True),
    ("blue lamp", "north", ["lamps"], [("55.00", 0)], True),
    ("green light", "acme", ["lighting"], [("80.00", 2), ("70.00", 0)], True),
    ("yellow cushion", "north", ["textiles"], [("15.50", 10)], True),
    ("white rug", "acme", ["textiles", "garden"], [("120.00", 1)], True),
    ("black planter", "north", ["garden"], [("25.00", 7)], True),
    ("orange stool", "acme", [], [], True),
    ("purple lamp", "acme", ["lamps"], [("10.00", 3)], False),
]


@dataclass
class Catalog:
    products: dict  # by name ("red lamp")
    categories: dict  # by name
    brands: dict  # by slug
    users: dict  # by email's local part ("alice", "bob", "staff")

    def __getitem__(self, name):
        return self.products[name]


def png(colour, size=(40, 40)):
    """The bytes of a PNG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def add_image(product, colour, *, position=0, name=None):
    """A ShopImage of ``product``: a square of ``colour`` (a name of COLOURS or an RGB tuple), saved the shop's way."""
    rgb = COLOURS[colour] if isinstance(colour, str) else colour
    name = name or f"{product.sku}-{position}.png"
    return ShopImage.objects.create(product=product, image=ContentFile(png(rgb), name=name), position=position)


def build(*, register=True):
    """Create the catalog of the table above.

    ``register``: register the tiny model first, so the mirrors are queued under it; without
    it the first image queued asks a worker to register the model (a shop's first day).
    """
    if register:
        indexing.register_model()
    users = {"alice": User.objects.create_user("alice@example.com", "pw"),
             "bob": User.objects.create_user("bob@example.com", "pw"),
             "staff": User.objects.create_superuser("staff@example.com", "pw")}
    brands = {"acme": Brand.objects.create(slug="acme", name="Acme", owner=users["alice"]),
              "north": Brand.objects.create(slug="north", name="North & Co", owner=users["bob"])}
    home = Category.objects.create(name="home")
    lighting = Category.objects.create(name="lighting", parent=home)
    categories = {"home": home, "lighting": lighting,
                  "lamps": Category.objects.create(name="lamps", parent=lighting),
                  "textiles": Category.objects.create(name="textiles", parent=home),
                  "garden": Category.objects.create(name="garden")}
    products = {}
    for number, (name, brand, in_categories, records, published) in enumerate(PRODUCTS):
        product = Product.objects.create(brand=brands[brand], sku=f"SKU-{number}", title=name, published=published)
        product.categories.set([categories[c] for c in in_categories])
        for price, stock in records:
            StockRecord.objects.create(product=product, price=Decimal(price), num_in_stock=stock)
        add_image(product, name.split()[0])
        products[name] = product
    return Catalog(products=products, categories=categories, brands=brands, users=users)


def load():
    """The catalog as it is in the database now, as fresh instances (a test may change or delete them)."""
    return Catalog(products={product.title: product for product in Product.objects.all()},
                   categories={category.name: category for category in Category.objects.all()},
                   brands={brand.slug: brand for brand in Brand.objects.all()},
                   users={user.email.split("@")[0]: user for user in User.objects.all()})


def clear():
    """Delete the catalog, its images (mirrors and vectors with them) and the models."""
    Product.objects.all().delete()
    for model in (Brand, Category, User, EmbeddingModel):
        model.objects.all().delete()


def embed_pending():
    """Embed every pending row under the serving model here, as a worker would; return how many became ready."""
    model = index.serving_model()
    pending = list(ImageEmbedding.objects.filter(model=model, state=ImageEmbedding.State.PENDING)
                   .values_list("pk", flat=True))
    return indexing.embed_pending(model.pk, pending)
