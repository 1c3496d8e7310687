from django.contrib import admin
from django.db.models import Prefetch

from p2w_search.admin import ImageActions, ProductImageForm, thumbnail
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage
from shop_demo.catalog.models import Merchant, Product


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    form = ProductImageForm
    fields = ["file", "position", "sha256", "in_index"]
    readonly_fields = ["sha256", "in_index"]
    extra = 0


class EmbeddingStateFilter(admin.SimpleListFilter):
    title = "embedding state"
    parameter_name = "embedding"

    def lookups(self, request, model_admin):
        return ImageEmbedding.State.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(p2w_images__embeddings__state=self.value()).distinct()
        return queryset


class EmbeddingModelFilter(admin.SimpleListFilter):
    title = "embedding model"
    parameter_name = "embedding_model"

    def lookups(self, request, model_admin):
        return [(m.pk, str(m)) for m in EmbeddingModel.objects.order_by("pk")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(p2w_images__embeddings__model_id=self.value()).distinct()
        return queryset


@admin.register(Product)
class ProductAdmin(ImageActions, admin.ModelAdmin):
    list_display = ["preview", "sku", "title", "category", "price", "in_stock", "merchant", "embedding"]
    list_display_links = ["sku", "title"]
    list_filter = [EmbeddingStateFilter, EmbeddingModelFilter, "merchant", "category", "in_stock"]
    search_fields = ["sku", "title"]
    inlines = [ProductImageInline]
    actions = ["reembed", "retry_failed", "remove_from_index"]

    def get_queryset(self, request):
        serving = ImageEmbedding.objects.filter(model__state=EmbeddingModel.State.SERVING)
        images = ProductImage.objects.prefetch_related(Prefetch("embeddings", queryset=serving))
        return super().get_queryset(request).select_related("merchant").prefetch_related(
            Prefetch("p2w_images", queryset=images))

    def images(self, queryset):
        return list(ProductImage.objects.filter(product__in=queryset))

    @admin.display(description="image")
    def preview(self, obj):
        images = list(obj.p2w_images.all())
        return thumbnail(images[0] if images else None)

    @admin.display(description="embedding (serving model)")
    def embedding(self, obj):
        states = [e.state for image in obj.p2w_images.all() for e in image.embeddings.all()]
        return ", ".join(sorted(set(states))) or "not embedded"


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "user"]
