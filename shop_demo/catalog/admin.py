from django.contrib import admin

from p2w_search.models import ProductImage
from shop_demo.catalog.models import Merchant, Product


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    fields = ["file", "position", "sha256"]
    readonly_fields = ["sha256"]
    extra = 0


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "title", "category", "price", "in_stock", "merchant"]
    list_filter = ["category", "in_stock", "merchant"]
    search_fields = ["sku", "title"]
    inlines = [ProductImageInline]


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "user"]
