from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import IntegrityError
from django.db.models import Prefetch

from p2w_search.admin import ImageActions, ProductImageForm, RefuseNulFilters, thumbnail
from p2w_search.admin_writes import BoundedWrites, SaveChangedFields
from p2w_search.models import EmbeddingModel, ImageEmbedding, ProductImage
from p2w_search.uploads.manifest import sku_problem
from shop_demo.catalog.models import SAME_LOOKING_IN_ADMIN, Merchant, Product, sku_reads_the_same, sku_taken

DUPLICATE_SKU_IN_ADMIN = "This merchant already has a product with this SKU; give another SKU, or change that product."


class SkuFormField(forms.CharField):
    """A SKU without characters no one sees or that look like others (``sku_problem``, as the import and the product
    API check it); checked before the field's validators, so a NUL is named and placed like the others."""

    def to_python(self, value):
        sku = super().to_python(value)
        problem = sku_problem(sku)
        if problem:
            raise forms.ValidationError(problem, code="unseen")
        return sku


class SkuTakenMeanwhile(Exception):
    """Raised by the product admin's save when another writer took the SKU after the form was checked."""

    def __init__(self, field, reason):
        super().__init__(reason)
        self.field, self.reason = field, reason


class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = "__all__"
        field_classes = {"sku": SkuFormField}

    # (field or None, reason): set by ProductAdmin on the form it shows again after SkuTakenMeanwhile.
    taken_meanwhile = None

    def clean(self):
        """A SKU the merchant has is the sku field's one error.

        Left to the model's constraints, it was two errors above the form: the unique constraint's
        "Product with this Merchant and Sku already exists." and the NFC one's (a SKU written alike
        reads the same too). A field with an error is left out of the constraints' checks.
        """
        cleaned = super().clean()
        merchant, sku = cleaned.get("merchant"), cleaned.get("sku")
        if merchant is not None and sku and self._sku_taken(merchant, sku):
            self.add_error("sku", forms.ValidationError(DUPLICATE_SKU_IN_ADMIN, code="unique"))
        elif merchant is not None and sku and sku != self.instance.sku:  # a product's own SKU stays
            look_alike = self._others(merchant).look_alike_reason(sku)  # А-1 in Cyrillic beside A-1, as an import
            if look_alike:
                self.add_error("sku", forms.ValidationError(look_alike, code="look_alike"))
        return cleaned

    def full_clean(self):
        """Shown again after SkuTakenMeanwhile, the form finds the other product by itself (it is committed); if it
        does not, the save's reason is its error all the same, so the form is never taken a second time."""
        super().full_clean()
        if self.taken_meanwhile and self.is_bound and not self._errors:
            field, reason = self.taken_meanwhile
            self.add_error(field, forms.ValidationError(reason, code="unique"))

    def _sku_taken(self, merchant, sku):
        return self._others(merchant).filter(sku=sku).exists()

    def _others(self, merchant):
        """The merchant's products but the one this form changes."""
        others = Product.objects.filter(merchant=merchant)
        return others if self.instance.pk is None else others.exclude(pk=self.instance.pk)


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    form = ProductImageForm
    fields = ["file", "position", "sha256", "in_index"]
    readonly_fields = ["sha256", "in_index"]
    extra = 0


class ChoiceFilter(admin.SimpleListFilter):
    """A list filter whose value must be one of its choices: another ("abc" for a model, a NUL) is
    the admin's "incorrect lookup" answer, not a database error.

    The products are those with a matching image row, found by a subquery: filtering across the
    images and their embeddings joined each product once per match, and the DISTINCT that removed
    the copies compared every column of every product, for the page and again for its count.
    """

    field = None  # the lookup the chosen value filters on

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        if self.value() not in {str(value) for value, _ in self.lookup_choices}:
            raise IncorrectLookupParameters(f"{self.parameter_name} is none of its choices")
        matching = queryset.model._default_manager.filter(**{self.field: self.value()}).values("pk")
        return queryset.filter(pk__in=matching)


class EmbeddingStateFilter(ChoiceFilter):
    title = "embedding state"
    parameter_name = "embedding"
    field = "p2w_images__embeddings__state"

    def lookups(self, request, model_admin):
        return ImageEmbedding.State.choices


class EmbeddingModelFilter(ChoiceFilter):
    title = "embedding model"
    parameter_name = "embedding_model"
    field = "p2w_images__embeddings__model_id"

    def lookups(self, request, model_admin):
        return [(m.pk, str(m)) for m in EmbeddingModel.objects.order_by("pk")]


@admin.register(Product)
class ProductAdmin(SaveChangedFields, RefuseNulFilters, ImageActions, admin.ModelAdmin):
    form = ProductForm
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

    def save_model(self, request, obj, form, change):
        """Save, or raise SkuTakenMeanwhile: another writer (an import, the API, other staff) may commit the SKU
        between the form's check and this write, and the database's unique constraints refuse it (a 500 before)."""
        try:
            super().save_model(request, obj, form, change)
        except IntegrityError as error:
            if not sku_taken(error):
                raise
            if sku_reads_the_same(error):  # the words the form would have had, had that product been there before
                raise SkuTakenMeanwhile(None, SAME_LOOKING_IN_ADMIN) from error
            raise SkuTakenMeanwhile("sku", DUPLICATE_SKU_IN_ADMIN) from error

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """The form again, with the SKU's error, when the save met a SKU taken meanwhile; nothing of it was written
        (the view's transaction was rolled back), and the staff member's edits are kept on the page."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except SkuTakenMeanwhile as taken:
            request.p2w_sku_taken = (taken.field, taken.reason)
            for _, uploads in request.FILES.lists():  # the inlines' image files, read once already
                for upload in uploads:
                    upload.seek(0)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        taken = getattr(request, "p2w_sku_taken", None)
        return type(form.__name__, (form,), {"taken_meanwhile": taken}) if taken else form

    @admin.display(description="image")
    def preview(self, obj):
        images = list(obj.p2w_images.all())
        return thumbnail(images[0] if images else None)

    @admin.display(description="embedding (serving model)")
    def embedding(self, obj):
        states = [e.state for image in obj.p2w_images.all() for e in image.embeddings.all()]
        return ", ".join(sorted(set(states))) or "not embedded"


@admin.register(Merchant)
class MerchantAdmin(BoundedWrites, RefuseNulFilters, admin.ModelAdmin):
    list_display = ["name", "slug", "user"]


def refuse_nul_filters_on_the_accounts_admins():
    """Django's and DRF's own admins (users, groups, tokens) registered again with the app's answer to a NUL in a
    list filter (``?username=%00``): PostgreSQL refuses a text value with a NUL, a 500 otherwise."""
    from django.contrib.auth.admin import GroupAdmin, UserAdmin
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.admin import TokenAdmin
    from rest_framework.authtoken.models import TokenProxy

    for model, model_admin in ((User, UserAdmin), (Group, GroupAdmin), (TokenProxy, TokenAdmin)):
        admin.site.unregister(model)
        admin.site.register(model, type(model_admin.__name__, (RefuseNulFilters, model_admin), {}))


refuse_nul_filters_on_the_accounts_admins()
