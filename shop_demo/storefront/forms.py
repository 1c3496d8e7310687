"""The storefront's own form: words and the demo catalog's filters. The photo and "like this, but ..." forms are
the app's (p2w_search.shopper.forms), shared with host shops."""

from django import forms

from p2w_search.api.filters import BoundedNumberField

__all__ = ["SearchForm", "FILTERS"]

FILTERS = ("category", "price_min", "price_max", "in_stock")


class SearchForm(forms.Form):
    """Words and filters, all in the query string: the header's form sends the words, the sidebar's the filters."""

    q = forms.CharField(required=False, max_length=200, label="Search")
    category = forms.ChoiceField(required=False, label="Category")
    # The API's price field: ASCII digits (Decimal read "1_3" as 13 and "١٣" as 13).
    price_min = BoundedNumberField(required=False, min_value=0, max_digits=10, decimal_places=2, label="Min price")
    price_max = BoundedNumberField(required=False, min_value=0, max_digits=10, decimal_places=2, label="Max price")
    in_stock = forms.BooleanField(required=False, label="In stock only")

    def __init__(self, *args, categories=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", "All categories"), *((c, c.capitalize()) for c in categories)]
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

    @property
    def filter_params(self):
        """(name, value) of the filters in the request, for forms that must keep them (hidden inputs)."""
        return [(name, value) for name in FILTERS for value in self.data.getlist(name) if value]

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
