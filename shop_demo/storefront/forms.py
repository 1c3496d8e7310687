"""The shopper's forms: text search with filters, search by photo, and "like this, but ..."."""

import base64
import io

from django import forms

from p2w_search.composition import DEFAULT_METHOD, METHODS, check_change
from p2w_search.conf import app_settings, image_limits
from p2w_search.imaging import ImageRejected, load_image

__all__ = ["SearchForm", "PhotoForm", "ChangeForm", "METHOD_LABELS"]

METHOD_LABELS = {
    "pic2word": "Pic2Word (composed)",
    "image_only": "Image only (baseline)",
    "text_only": "Text only (baseline)",
    "image_plus_text": "Image + text (baseline)",
    "fusion": "Pic2Word + image + text (fusion)",
}


class SearchForm(forms.Form):
    """Words and filters, all in the query string (``form="search"`` ties the sidebar fields to the header's form)."""

    q = forms.CharField(required=False, max_length=200, label="Search")
    category = forms.ChoiceField(required=False, label="Category")
    price_min = forms.DecimalField(required=False, min_value=0, max_digits=10, decimal_places=2, label="Min price")
    price_max = forms.DecimalField(required=False, min_value=0, max_digits=10, decimal_places=2, label="Max price")
    in_stock = forms.BooleanField(required=False, label="In stock only")

    def __init__(self, *args, categories=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", "All categories"), *((c, c.capitalize()) for c in categories)]
        for name in ("category", "price_min", "price_max", "in_stock"):
            self.fields[name].widget.attrs["form"] = "search"
        for name, placeholder in (("price_min", "0"), ("price_max", "any")):
            self.fields[name].widget.attrs.update(placeholder=placeholder, step="0.01")

    def clean(self):
        data = super().clean()
        low, high = data.get("price_min"), data.get("price_max")
        if low is not None and high is not None and low > high:
            self.add_error("price_max", "The maximum price is below the minimum.")
        return data

    @property
    def text(self):
        return self.cleaned_data.get("q", "").strip()

    @property
    def filtering(self):
        data = self.cleaned_data
        return bool(data.get("category") or data.get("in_stock")
                    or data.get("price_min") is not None or data.get("price_max") is not None)

    def filter(self, products):
        """Return ``products`` restricted by the valid filters."""
        data = self.cleaned_data
        if data.get("category"):
            products = products.filter(category=data["category"])
        if data.get("price_min") is not None:
            products = products.filter(price__gte=data["price_min"])
        if data.get("price_max") is not None:
            products = products.filter(price__lte=data["price_max"])
        if data.get("in_stock"):
            products = products.filter(in_stock=True)
        return products


class PhotoForm(forms.Form):
    """An uploaded photo, decoded with the app's limits; ``photo`` becomes its bytes when valid."""

    photo = forms.FileField(label="Photo", widget=forms.ClearableFileInput(attrs={"accept": "image/*"}))

    def clean_photo(self):
        upload = self.cleaned_data["photo"]
        data = upload.read(app_settings.MAX_IMAGE_BYTES + 1)  # load_image rejects anything longer
        try:
            image = load_image(data, **image_limits())
        except ImageRejected as exc:
            raise forms.ValidationError(f"This photo cannot be used: {exc.reason}.") from None
        self.preview = _preview(image)
        return data


class ChangeForm(forms.Form):
    """What to change about the product (``?change=in+red``) and the method that composes the query."""

    change = forms.CharField(max_length=300, label="Like this, but…")
    method = forms.ChoiceField(required=False, label="Method")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["method"].choices = [(m, METHOD_LABELS.get(m, m)) for m in METHODS]
        self.fields["method"].initial = DEFAULT_METHOD
        self.fields["change"].widget.attrs.update(placeholder="in red, with stripes, …", autocomplete="off")

    def clean_change(self):
        change = self.cleaned_data["change"]
        try:
            check_change(change)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return change

    def clean_method(self):
        return self.cleaned_data["method"] or DEFAULT_METHOD


def _preview(image, size=160):
    """Return a small JPEG of ``image`` as a data: URL, to show the shopper the photo they searched with."""
    thumb = image.copy()
    thumb.thumbnail((size, size))
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
