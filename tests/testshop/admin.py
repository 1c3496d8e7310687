"""The test shop's admin: its own users, catalog and images (the app's admin sits beside it)."""

from django.contrib import admin

from tests.testshop.models import Brand, Category, Product, ShopImage, StockRecord, User


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ["email", "full_name", "is_staff", "is_active"]
    search_fields = ["email", "full_name"]
    exclude = ["password"]


@admin.register(Brand)
class BrandAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "owner"]
    search_fields = ["slug", "name"]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "parent"]


class StockRecordInline(admin.TabularInline):
    model = StockRecord
    extra = 0


class ShopImageInline(admin.TabularInline):
    model = ShopImage
    extra = 0


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["title", "sku", "brand", "published"]
    list_filter = ["published", "brand"]
    search_fields = ["title", "sku"]
    inlines = [StockRecordInline, ShopImageInline]


@admin.register(ShopImage)
class ShopImageAdmin(admin.ModelAdmin):
    list_display = ["pk", "product", "image", "position"]
    raw_id_fields = ["product"]
