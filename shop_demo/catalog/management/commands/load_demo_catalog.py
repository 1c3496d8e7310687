"""Load the synthetic demo catalog: products and their rendered images (queued for embedding as they are saved)."""

import hashlib
import io

from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from p2w_search.models import ProductImage
from shop_demo.catalog import generator
from shop_demo.catalog.models import Merchant, Product

MERCHANT_SLUG = "demo-outfitters"
# ProductImage.position (a PositiveSmallIntegerField) counts from 0: the most images a product can be given here.
MAX_IMAGES_PER_PRODUCT = 32767 + 1


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Create the demo merchant and its synthetic products (skips products that exist)."

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, default=1000, help="Number of products.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--images-per-product", type=int, default=1)
        parser.add_argument("--exact", action="store_true",
                            help="Refuse a database whose products are another seed's (what an evaluation needs).")

    def handle(self, *, size, seed, images_per_product, exact=False, **options):
        for option, value in (("--size", size), ("--images-per-product", images_per_product)):
            if value < 1:
                raise CommandError(f"{option}: must be at least 1, not {value}")
        if images_per_product > MAX_IMAGES_PER_PRODUCT:
            raise CommandError(f"--images-per-product: must be at most {MAX_IMAGES_PER_PRODUCT} (an image's "
                               f"position is a small integer), not {images_per_product}")
        merchant, _ = Merchant.objects.get_or_create(slug=MERCHANT_SLUG, defaults={"name": "Demo Outfitters"})
        existing = dict(Product.objects.filter(merchant=merchant).values_list("sku", "title"))
        products = generator.generate_products(size, seed=seed)
        if exact:
            _check_seed(products, existing, seed)
        todo = [p for p in products if p.sku not in existing]
        if not todo:
            self.stdout.write(f"demo catalog: {len(existing)} products already loaded")
            return
        for start in tqdm(range(0, len(todo), 100), desc="loading demo catalog", unit="x100 products"):
            self._load(merchant, todo[start:start + 100], seed, images_per_product)
        self.stdout.write(self.style.SUCCESS(f"demo catalog: added {len(todo)} products"))

    @transaction.atomic
    def _load(self, merchant, synthetic, seed, images_per_product):
        for item in synthetic:
            product = Product.objects.create(
                merchant=merchant, sku=item.sku, title=item.title, description=item.description,
                category=item.category, price=item.price, in_stock=item.in_stock,
            )
            for variant in range(images_per_product):
                data = png_bytes(generator.render(item, seed=seed, variant=variant))
                image = ProductImage(product=product, position=variant, sha256=hashlib.sha256(data).hexdigest())
                image.file.save(f"{item.sku.lower()}-{variant}.png", ContentFile(data), save=False)
                image.save()  # queued for embedding when the transaction commits, with the others


def _check_seed(products, existing, seed):
    """Every seed's SKUs are DEMO-00001..., so products of another seed would be skipped as loaded,
    and an evaluation would score this seed's triplets against their photos."""
    for product in products:
        if product.sku in existing and existing[product.sku] != product.title:
            raise CommandError(
                f"{product.sku} is {existing[product.sku]!r} in this database, not {product.title!r} as in the "
                f"catalog of seed {seed}: the database holds another demo catalog. Evaluate each seed with its own "
                "P2W_VAR_DIR.")
