from django.apps import AppConfig


class StorefrontConfig(AppConfig):
    name = "shop_demo.storefront"
    label = "storefront"
    verbose_name = "Storefront"
