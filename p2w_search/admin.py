"""Admin for the index: its status page, models, images and their embedding states."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from rest_framework.exceptions import NotFound

from p2w_search import dispatch, indexing, serving, status
from p2w_search.admin_writes import BoundedWrites, WriteRefused
from p2w_search.api.uploads import FILES, FilesUnreadable, download
from p2w_search.conf import app_settings, image_limits
from p2w_search.files import image_url
from p2w_search.imaging import ImageRejected, load_image
from p2w_search.models import EmbeddingModel, ImageEmbedding, ImportJob, ProductImage
from p2w_search.uploads.progress import image_counts, job_errors, prefetch_image_counts, unlisted_skus


class NulRefusingChangeList(ChangeList):
    """The admin's list, where a NUL in a filter's value is the admin's "incorrect lookup" answer, not a 500.

    Django filters a list by any of the model's own fields and any value (``?state__exact=...``);
    PostgreSQL refuses a text value with a NUL with an error.
    """

    def get_filters_params(self, params=None):
        params = super().get_filters_params(params)
        if any("\x00" in value for values in params.values() for value in values):
            raise IncorrectLookupParameters("a filter's value holds a NUL")
        return params


class RefuseNulFilters:
    """A ModelAdmin whose list answers a NUL in a filter's value as an incorrect lookup (NulRefusingChangeList)."""

    def get_changelist(self, request, **kwargs):
        return NulRefusingChangeList


def _start_message(alias):
    """What Start does for ``alias``: only the worker loads its weights, so whether they are a new model is its call.

    It said "embedding the catalog beside the serving model" for the serving model's own alias, where the worker
    found the same weights and had nothing to embed.
    """
    serving = EmbeddingModel.objects.filter(state=EmbeddingModel.State.SERVING, alias=alias).first()
    if serving is None:
        return f"A worker is registering {alias!r} and embedding the catalog beside the serving model."
    return (f"A worker is loading {alias!r}, the serving model's alias: with the serving model's weights there is "
            "nothing to embed. New weights go under a new alias in P2W_SEARCH['EMBEDDERS'], started here once added.")


@admin.register(EmbeddingModel)
class EmbeddingModelAdmin(BoundedWrites, RefuseNulFilters, admin.ModelAdmin):
    list_display = ["__str__", "alias", "dimensions", "state", "serving_since", "created_at"]
    list_filter = ["state"]
    readonly_fields = ["alias", "architecture", "weights", "checksum", "dimensions", "state", "serving_since"]
    change_list_template = "admin/p2w_search/embeddingmodel/change_list.html"

    def has_add_permission(self, request):
        return False  # models are registered from EMBEDDERS, by a worker that loads them

    # Deleting the serving model deletes every vector of the catalog with it: every search would answer 503
    # until a worker had embedded the whole catalog again (hours for a large one). It is refused.

    def has_delete_permission(self, request, obj=None):
        serving = obj is not None and obj.state == EmbeddingModel.State.SERVING
        return not serving and super().has_delete_permission(request, obj)

    def delete_view(self, request, object_id, extra_context=None):
        model = self.get_object(request, unquote(object_id))
        may_delete = model is not None and super().has_delete_permission(request, model)
        if may_delete and model.state == EmbeddingModel.State.SERVING:  # others get Django's answer: 403
            self.message_user(request, serving_refusal(model), messages.ERROR)
            return redirect("admin:p2w_search_embeddingmodel_change", model.pk)
        return super().delete_view(request, object_id, extra_context)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            delete_selected, name, description = actions["delete_selected"]

            def delete_unless_serving(modeladmin, request, queryset):
                serving = queryset.filter(state=EmbeddingModel.State.SERVING).first()
                if serving is not None:
                    modeladmin.message_user(request, serving_refusal(serving), messages.ERROR)
                    return None  # the list again, nothing deleted
                return delete_selected(modeladmin, request, queryset)

            actions["delete_selected"] = (delete_unless_serving, name, description)
        return actions

    def delete_model(self, request, obj):
        self._refuse_serving(EmbeddingModel.objects.filter(pk=obj.pk))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        self._refuse_serving(queryset)
        super().delete_queryset(request, queryset)

    def _refuse_serving(self, queryset):
        """Checked again under the rows' locks, which a switch to serving takes too (serving.switch_serving)."""
        models = list(queryset.select_for_update().order_by("pk"))
        serving = next((model for model in models if model.state == EmbeddingModel.State.SERVING), None)
        if serving is not None:
            raise WriteRefused(serving_refusal(serving),
                               redirect_to=reverse("admin:p2w_search_embeddingmodel_changelist"))

    def get_urls(self):
        return [
            path("index/", self.admin_site.admin_view(self.index_view), name="p2w_search_index"),
            *super().get_urls(),
        ]

    def index_view(self, request):
        """The index page: what is wrong, workers, rates, search health, what is indexed; start and switch models.

        Staff who may view embedding models read it (as they would the models' list); changing
        anything needs the permission to change them.
        """
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_change_permission(request):
                messages.error(request, "You may not change the index.")
            else:
                self._act(request)
            return redirect(reverse("admin:p2w_search_index"))
        current = status.index_status()
        context = {**self.admin_site.each_context(request), **current, "charts": status.charts(current),
                   "title": "Search index", "can_change": self.has_change_permission(request),
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/p2w_search/index_status.html", context)

    def _act(self, request):
        action = request.POST.get("action")
        if action == "start":
            alias = request.POST.get("alias")
            if alias not in app_settings.EMBEDDERS:
                messages.error(request, f"There is no embedder alias {alias!r}.")
                return
            # A worker loads the weights and registers the model; the web process never loads a model.
            # No sweep repeats this send, so the admin hears at once when it did not go out.
            try:
                dispatch.send(dispatch.START_MODEL, kwargs={"alias": alias}, when="now")
            except dispatch.QueueUnavailable as exc:
                messages.error(request, f"Could not start {alias!r}: {exc}")
                return
            messages.success(request, _start_message(alias))
        elif action == "switch":
            try:
                model = EmbeddingModel.objects.filter(pk=request.POST.get("model")).first()
            except (ValueError, TypeError):  # not a number ("abc", "²", 5000 digits)
                model = None
            if model is None:
                messages.error(request, "There is no such model.")
                return
            try:
                serving.switch_serving(model)
            except serving.CannotServe as exc:
                messages.error(request, str(exc))
                return
            messages.success(request, f"{model} now serves searches.")


def serving_refusal(model):
    return (f"Nothing was deleted: {model} serves searches, and deleting it would delete every vector of the "
            "catalog, so that every search would fail until the whole catalog was embedded again. Switch another "
            "model to serving on the index page first.")


class ImageEmbeddingInline(admin.TabularInline):
    model = ImageEmbedding
    fields = ["model", "state", "error", "attempts", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


class ImageActions(BoundedWrites):
    """Index actions on product images, shared by this admin and the shop's product admin.

    They change the index, so they need the permission to change product images
    (``p2w_search.change_productimage``) whatever admin shows them: staff who may only view, or
    who may change the shop's products but not the index, do not see them. They lock the images
    first, waiting a bounded time (BoundedWrites): one deleted meanwhile is left out, where its
    embedding row was added and failed the commit (a 500).

    A whole catalog ("select all" of 70,000 products) is one request: the images are locked and read as ids,
    the index is changed by a few set-based statements (indexing.queue_image_ids, retry_failed,
    remove_from_index) in the request's one transaction, and the tasks are sent once it commits. A request cut
    off before its commit changes nothing; one cut off while sending leaves its rows pending, which the sweep
    sends again. Each message counts what was done: images out of the index are left out, and said so.
    """

    class Media:
        css = {"all": ["p2w_search/admin.css"]}  # the thumbnails' style

    def images(self, queryset):
        """The ProductImages the selected rows stand for, locked, in id order (a queryset): the rows themselves, or
        the images of the selected products in the shop's product admin.

        A product's key was taken for an image's: with string keys a 500, with integer keys the
        images whose ids happened to be the products' were embedded again or removed from the index.
        """
        if issubclass(queryset.model, ProductImage):
            chosen = Q(pk__in=queryset.values("pk"))
        else:
            chosen = Q(product__in=queryset.values("pk"))
        return ProductImage.objects.select_for_update().filter(chosen).order_by("pk")

    def selected_image_ids(self, queryset):
        """``(in the index, out of it)``: the ids of ``images``, read as two lists of ids rather than as objects."""
        indexed, out = [], []
        for pk, in_index in self.images(queryset).values_list("pk", "in_index"):
            (indexed if in_index else out).append(pk)
        return indexed, out

    def has_manage_index_permission(self, request):
        return request.user.has_perm(f"{ProductImage._meta.app_label}.change_productimage")

    @admin.action(description="Embed the selected images again", permissions=["manage_index"])
    def reembed(self, request, queryset):
        indexed, out = self.selected_image_ids(queryset)
        queued = indexing.queue_image_ids(indexed)
        self.message_user(request, f"Queued {queued} image{pluralize(queued)}.{_left_out(out, 'left out')}")

    @admin.action(description="Retry the failed embeddings of the selected images", permissions=["manage_index"])
    def retry_failed(self, request, queryset):
        indexed, out = self.selected_image_ids(queryset)
        retried = indexing.retry_failed(indexed)
        self.message_user(request, f"Queued {retried} failed embedding{pluralize(retried)} again."
                                   f"{_left_out(out, 'left out')}")

    @admin.action(description="Remove the selected images from the search index", permissions=["manage_index"])
    def remove_from_index(self, request, queryset):
        indexed, out = self.selected_image_ids(queryset)
        removed = indexing.remove_from_index(indexed + out)
        taken = len(indexed)
        self.message_user(request, f"Removed {removed} vector{pluralize(removed)}; these images are no longer "
                                   f"searched. {taken} image{pluralize(taken, ' was,s were')} taken out of the "
                                   f"search index.{_left_out(out, 'out of it already')}")


def _left_out(ids, what):
    """`` 2 of the selected images are out of the search index and were WHAT.``, or nothing for no ids."""
    if not ids:
        return ""
    return (f" {len(ids)} of the selected images {pluralize(len(ids), 'is,are')} out of the search index and "
            f"{pluralize(len(ids), 'was,were')} {what}.")


class ProductImageForm(forms.ModelForm):
    """A product image as staff add it: the file must be an image the app accepts (the limits of every upload)."""

    def clean_file(self):
        file = self.cleaned_data["file"]
        if isinstance(file, UploadedFile):  # a new upload, not the image's stored file
            try:
                load_image(file.read(int(app_settings.MAX_IMAGE_BYTES) + 1), **image_limits())
            except ImageRejected as exc:
                raise forms.ValidationError(f"This file cannot be used: {exc.reason}.") from None
            finally:
                file.seek(0)
        return file


def thumbnail(image, size=56):
    if image is None or not image.file:
        return "-"
    # Styled by p2w_search/admin.css (ImageActions.Media), not a style attribute: a strict CSP drops those.
    return format_html('<img src="{}" class="p2w-thumb" width="{}" height="{}" alt="">', image_url(image), size, size)


@admin.register(ProductImage)
class ProductImageAdmin(RefuseNulFilters, ImageActions, admin.ModelAdmin):
    form = ProductImageForm
    list_display = ["id", "preview", "product", "position", "in_index", "states", "created_at"]
    list_filter = ["in_index", "embeddings__state", "embeddings__model"]
    search_fields = ["sha256"]
    raw_id_fields = ["product"]
    readonly_fields = ["sha256", "in_index"]
    inlines = [ImageEmbeddingInline]
    actions = ["reembed", "retry_failed", "remove_from_index"]

    # A mirror of the shop's own image (IMAGE_MODEL) is the shop's: its file, product and order
    # are changed in the shop's admin, and shown here read-only, linked where the shop serves it.
    mirror_fields = ["product", "position", "shop_file", "source_pk", "sha256", "in_index"]

    @admin.display(description="image")
    def preview(self, obj):
        return thumbnail(obj)

    @admin.display(description="the shop's file")
    def shop_file(self, obj):
        return format_html("<a href=\"{}\">{}</a><br>{}: changed in the shop's own admin, not here.",
                           image_url(obj), thumbnail(obj, size=160), obj.file.name)

    def get_fields(self, request, obj=None):
        return self.mirror_fields if obj is not None and obj.source_pk else super().get_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return self.mirror_fields if obj is not None and obj.source_pk else super().get_readonly_fields(request, obj)

    @admin.display(description="embedding")
    def states(self, obj):
        return ", ".join(f"{e.model_id}: {e.state}" for e in obj.embeddings.all()) or "-"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("embeddings")


@admin.register(ImageEmbedding)
class ImageEmbeddingAdmin(BoundedWrites, RefuseNulFilters, admin.ModelAdmin):
    list_display = ["id", "image", "model", "state", "attempts", "error", "updated_at"]
    list_filter = ["state", "model"]
    readonly_fields = ["image", "model", "state", "error", "attempts", "queued_at", "updated_at", "norm"]
    exclude = ["vector"]

    def has_add_permission(self, request):
        return False


class ImportJobChangeList(NulRefusingChangeList):
    """The jobs' list, whose page's image counts are read at once: three queries, not three per job."""

    def get_results(self, request):
        super().get_results(request)
        prefetch_image_counts(self.result_list)  # fills the QuerySet's cache: the rows shown are those counted


@admin.register(ImportJob)
class ImportJobAdmin(BoundedWrites, RefuseNulFilters, admin.ModelAdmin):
    list_display = ["id", "merchant_key", "owner", "state", "policy", "rows_total", "rows_accepted", "rows_rejected",
                    "embedded_images", "created_at"]
    list_filter = ["state", "policy", "full_sync"]
    # The owner may be null: Django's own select_related() of the list leaves such a key out (a query per row).
    list_select_related = ["owner"]
    readonly_fields = ["owner", "merchant_key", "state", "policy", "full_sync", "confirm_unlist", "files",
                       "rows_total", "rows_accepted", "rows_rejected", "products_unlisted", "unlisted", "errors_total",
                       "row_errors", "message", "created_at", "started_at", "ended_at", "files_removed_at"]
    fields = readonly_fields

    def get_search_fields(self, request):
        # The user model's own login field: a custom user model need not have a username.
        return ["merchant_key", f"owner__{get_user_model().USERNAME_FIELD}"]

    def has_add_permission(self, request):
        return False  # uploads come from merchants (API) or the p2w_import command

    def get_changelist(self, request, **kwargs):
        return ImportJobChangeList

    def get_urls(self):
        return [
            path("<int:pk>/files/<str:name>/", self.admin_site.admin_view(self.file_view),
                 name="p2w_search_importjob_file"),
            *super().get_urls(),
        ]

    def file_view(self, request, pk, name):
        """Staff download an upload's file (uploads are never served publicly)."""
        if not self.has_view_permission(request):
            raise Http404
        job = get_object_or_404(ImportJob, pk=pk)
        try:
            return download(job, name)
        except NotFound as exc:
            raise Http404(str(exc.detail)) from None
        except FilesUnreadable as exc:
            return HttpResponse(str(exc.detail), status=exc.status_code, content_type="text/plain; charset=utf-8")

    @admin.display(description="files")
    def files(self, obj):
        links = [(reverse("admin:p2w_search_importjob_file", args=[obj.pk, name]), name)
                 for name, field in FILES.items() if getattr(obj, field)]
        if not links:
            return f"deleted on {obj.files_removed_at:%Y-%m-%d}" if obj.files_removed_at else "-"
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    @admin.display(description="images embedded / total")
    def embedded_images(self, obj):
        counts = image_counts(obj)
        return f"{counts['images_embedded']} / {counts['images_total']}"

    # Both read the job's JSON as the poll answer does (progress.py): a row edited by hand, or written by another
    # version, with numbers for SKUs or errors without a key, is shown, not a 500.

    @admin.display(description="unlisted SKUs (first)")
    def unlisted(self, obj):
        return ", ".join(unlisted_skus(obj)) or "-"

    @admin.display(description="first row errors")
    def row_errors(self, obj):
        errors = job_errors(obj)
        if not errors:
            return "-"
        return format_html_join(
            "", "<div>row {}: <strong>{}</strong> {}</div>",
            ((e["row"] if e["row"] is not None else "-", e["field"] or "-", e["reason"]) for e in errors),
        )
