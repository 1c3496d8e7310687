"""The test shop's catalog, shaped unlike the demo's on every point the app must not assume.

- ``User`` logs in by email and has no ``username`` (``AUTH_USER_MODEL``);
- ``Product`` is keyed by a UUID;
- ``Brand`` is keyed by its slug (a string), and is the merchant of the catalog uploads;
- ``Category`` is a tree (``parent``; ``get_descendants()`` as treebeard's and mptt's nodes have);
- prices and stock live on ``StockRecord`` rows, not on the product;
- ``ShopImage`` is the shop's own image model (``P2W_SEARCH["IMAGE_MODEL"]``).
"""

import uuid

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.urls import reverse
from django.utils import timezone

from tests.testshop.storage import shop_image_storage

__all__ = ["User", "Brand", "Category", "Product", "StockRecord", "ShopImage"]


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        return self.create_user(email, password, is_staff=True, is_superuser=True, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A shop account: the email address is the login; there is no username."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    def __str__(self):
        return self.email


class Brand(models.Model):
    """A brand, keyed by its slug; its owner uploads its catalog (the upload's merchant)."""

    slug = models.SlugField(primary_key=True)
    name = models.CharField(max_length=200)
    owner = models.OneToOneField(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="brand")

    def __str__(self):
        return self.name


class Category(models.Model):
    """A node of the category tree."""

    name = models.CharField(max_length=100)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")

    class Meta:
        verbose_name_plural = "categories"

    def __str__(self):
        return self.name

    def get_descendants(self):
        """Every category below this one, at any depth (a QuerySet; the node itself is not in it)."""
        found, level = [], [self.pk]
        while level:
            level = list(Category.objects.filter(parent__in=level).values_list("pk", flat=True))
            found.extend(level)
        return Category.objects.filter(pk__in=found)


class Product(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="products")
    categories = models.ManyToManyField(Category, blank=True, related_name="products")
    sku = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    published = models.BooleanField(default=True)

    class Meta:
        ordering = ["title", "id"]
        constraints = [models.UniqueConstraint(fields=["brand", "sku"], name="testshop_unique_brand_sku")]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("testshop:product", args=[self.pk])


class StockRecord(models.Model):
    """What a partner sells a product for, and how many it has."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="stockrecords")
    partner = models.CharField(max_length=100, default="warehouse")
    price = models.DecimalField(max_digits=10, decimal_places=2)
    num_in_stock = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.product} at {self.partner}: {self.price} ({self.num_in_stock})"


class ShopImage(models.Model):
    """The shop's own product image; the search index follows it (P2W_SEARCH["IMAGE_MODEL"])."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images")
    image = models.ImageField(upload_to="testshop/images/", max_length=255, storage=shop_image_storage)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["product", "position", "pk"]

    def __str__(self):
        return f"{self.image.name} of {self.product}"
