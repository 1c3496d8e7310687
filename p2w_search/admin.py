"""Admin for the index: models, images and their embedding states."""

from django.contrib import admin, messages

from p2w_search import indexing
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage


@admin.register(EmbeddingModel)
class EmbeddingModelAdmin(admin.ModelAdmin):
    list_display = ["__str__", "alias", "dimensions", "state", "serving_since", "created_at"]
    list_filter = ["state"]
    readonly_fields = ["alias", "architecture", "weights", "checksum", "dimensions", "state", "serving_since"]
    actions = ["make_serving"]

    @admin.action(description="Serve searches with this model (once all images are embedded)")
    def make_serving(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model.", messages.ERROR)
            return
        try:
            model = indexing.switch_serving(queryset.get())
        except indexing.IncompleteModel as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{model} now serves searches.")


class ImageEmbeddingInline(admin.TabularInline):
    model = ImageEmbedding
    fields = ["model", "state", "error", "attempts", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(ProductImage)
class ProductImageAdmin(admin.ModelAdmin):
    list_display = ["id", "product", "position", "sha256", "created_at"]
    list_filter = ["embeddings__state", "embeddings__model"]
    raw_id_fields = ["product"]
    inlines = [ImageEmbeddingInline]
    actions = ["reembed"]

    @admin.action(description="Embed the selected images again")
    def reembed(self, request, queryset):
        indexing.queue_images(list(queryset))
        self.message_user(request, f"Queued {queryset.count()} images.")


@admin.register(ImageEmbedding)
class ImageEmbeddingAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "model", "state", "attempts", "error", "updated_at"]
    list_filter = ["state", "model"]
    readonly_fields = ["image", "model", "state", "error", "attempts", "queued_at", "updated_at"]
    exclude = ["vector"]
