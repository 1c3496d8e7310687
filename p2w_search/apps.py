from django.apps import AppConfig


class P2WSearchConfig(AppConfig):
    name = "p2w_search"
    verbose_name = "Product image search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from p2w_search import checks, index, product_images, shop_images  # noqa: F401  (system checks; signals)

        shop_images.connect()  # the shop's own image model, when P2W_SEARCH["IMAGE_MODEL"] names one
