"""Admin for the index: its status page, models, images and their embedding states."""

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from p2w_search import indexing, status
from p2w_search.imports import job_progress
from p2w_search.conf import app_settings
from p2w_search.models import EmbeddingModel, ImageEmbedding, ImportJob, ProductImage


@admin.register(EmbeddingModel)
class EmbeddingModelAdmin(admin.ModelAdmin):
    list_display = ["__str__", "alias", "dimensions", "state", "serving_since", "created_at"]
    list_filter = ["state"]
    readonly_fields = ["alias", "architecture", "weights", "checksum", "dimensions", "state", "serving_since"]
    change_list_template = "admin/p2w_search/embeddingmodel/change_list.html"

    def has_add_permission(self, request):
        return False  # models are registered from EMBEDDERS, by a worker that loads them

    def get_urls(self):
        return [
            path("index/", self.admin_site.admin_view(self.index_view), name="p2w_search_index"),
            *super().get_urls(),
        ]

    def index_view(self, request):
        """The index page: what is indexed, queues, errors; start a new model and switch to it."""
        if request.method == "POST":
            if not self.has_change_permission(request):
                messages.error(request, "You may not change the index.")
            else:
                self._act(request)
            return redirect(reverse("admin:p2w_search_index"))
        context = {**self.admin_site.each_context(request), **status.index_status(),
                   "title": "Search index", "can_change": self.has_change_permission(request),
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/p2w_search/index_status.html", context)

    def _act(self, request):
        action = request.POST.get("action")
        if action == "start":
            from p2w_search.tasks import start_model

            alias = request.POST.get("alias")
            if alias not in app_settings.EMBEDDERS:
                messages.error(request, f"There is no embedder alias {alias!r}.")
                return
            # A worker loads the weights and registers the model; the web process never loads a model.
            start_model.apply_async(kwargs={"alias": alias}, queue=app_settings.BULK_QUEUE)
            messages.success(request, f"A worker is registering {alias!r} and embedding the catalog beside "
                                      "the serving model.")
        elif action == "switch":
            model = EmbeddingModel.objects.filter(pk=request.POST.get("model")).first()
            if model is None:
                messages.error(request, "There is no such model.")
                return
            try:
                indexing.switch_serving(model)
            except indexing.IncompleteModel as exc:
                messages.error(request, str(exc))
                return
            messages.success(request, f"{model} now serves searches.")


class ImageEmbeddingInline(admin.TabularInline):
    model = ImageEmbedding
    fields = ["model", "state", "error", "attempts", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


class ImageActions:
    """Index actions on product images, shared by this admin and the shop's product admin."""

    def images(self, queryset):
        """The ProductImages the selected rows stand for."""
        return list(queryset)

    @admin.action(description="Embed the selected images again")
    def reembed(self, request, queryset):
        images = self.images(queryset)
        indexing.queue_images(images)
        self.message_user(request, f"Queued {len(images)} images.")

    @admin.action(description="Retry the failed embeddings of the selected images")
    def retry_failed(self, request, queryset):
        self.message_user(request, f"Queued {indexing.retry_failed(self.images(queryset))} failed embeddings again.")

    @admin.action(description="Remove the selected images from the search index")
    def remove_from_index(self, request, queryset):
        removed = indexing.remove_from_index(self.images(queryset))
        self.message_user(request, f"Removed {removed} vectors; these images are no longer searched.")


def thumbnail(image, size=56):
    if image is None or not image.file:
        return "-"
    return format_html('<img src="{}" width="{}" height="{}" style="object-fit:cover;border-radius:4px">',
                       image.file.url, size, size)


@admin.register(ProductImage)
class ProductImageAdmin(ImageActions, admin.ModelAdmin):
    list_display = ["id", "preview", "product", "position", "in_index", "states", "created_at"]
    list_filter = ["in_index", "embeddings__state", "embeddings__model"]
    search_fields = ["sha256"]
    raw_id_fields = ["product"]
    readonly_fields = ["sha256", "in_index"]
    inlines = [ImageEmbeddingInline]
    actions = ["reembed", "retry_failed", "remove_from_index"]

    @admin.display(description="image")
    def preview(self, obj):
        return thumbnail(obj)

    @admin.display(description="embedding")
    def states(self, obj):
        return ", ".join(f"{e.model_id}: {e.state}" for e in obj.embeddings.all()) or "-"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("embeddings")


@admin.register(ImageEmbedding)
class ImageEmbeddingAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "model", "state", "attempts", "error", "updated_at"]
    list_filter = ["state", "model"]
    readonly_fields = ["image", "model", "state", "error", "attempts", "queued_at", "updated_at", "norm"]
    exclude = ["vector"]

    def has_add_permission(self, request):
        return False


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "merchant_key", "owner", "state", "policy", "rows_total", "rows_accepted", "rows_rejected",
                    "images", "created_at"]
    list_filter = ["state", "policy"]
    search_fields = ["merchant_key", "owner__username"]
    readonly_fields = ["owner", "merchant_key", "state", "policy", "full_sync", "manifest", "archive", "rows_total",
                       "rows_accepted", "rows_rejected", "products_unlisted", "row_errors", "message", "created_at"]
    exclude = ["errors", "image_ids"]

    def has_add_permission(self, request):
        return False  # uploads come from merchants (API) or the p2w_import command

    @admin.display(description="images embedded / total")
    def images(self, obj):
        progress = job_progress(obj)
        return f"{progress['images_embedded']} / {progress['images_total']}"

    @admin.display(description="row errors")
    def row_errors(self, obj):
        if not obj.errors:
            return "-"
        return format_html_join(
            "", "<div>row {}: <strong>{}</strong> {}</div>",
            ((e["row"], e["field"] or "-", e["reason"]) for e in obj.errors[:200]),
        )
