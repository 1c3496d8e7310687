from django.apps import AppConfig


class TestShopConfig(AppConfig):
    name = "tests.testshop"
    label = "testshop"
    verbose_name = "Test shop"
    default_auto_field = "django.db.models.BigAutoField"
