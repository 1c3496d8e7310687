"""The shoppers' pages: browse and search (words, a photo, filters), and a product with "like this, but ...".

Searches call p2w_search's Python functions (storefront/search.py), not its HTTP API.
Whatever a shopper can get wrong is answered on the page: a bad filter or photo with 400 and
the reason, a search that cannot run now with 503 and a message; browsing needs no model.
"""

from functools import partial

from django.core.paginator import InvalidPage, Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods

from p2w_search.models import EmbeddingModel
from p2w_search.search import Rejected
from shop_demo.storefront import search
from shop_demo.storefront.forms import METHOD_LABELS, ChangeForm, PhotoForm, SearchForm

__all__ = ["home", "product"]

RESULTS = 24  # the top of a search; browsing pages through the catalog this many at a time
CHANGED = 12
SIMILAR = 6
NOT_INDEXED = "This product is not in the search index yet; try again once indexing is done."
SUGGESTED_CHANGES = ["in red", "in blue", "in black", "with stripes", "with polka dots", "with a star print"]


@require_http_methods(["GET", "HEAD", "POST"])
def home(request):
    """Browse (newest first), search by words, or search by an uploaded photo (POST); filters apply to all three."""
    form = SearchForm(request.GET, categories=search.categories())
    photo_form = PhotoForm(request.POST, request.FILES) if request.method == "POST" else PhotoForm()
    context = {"form": form, "photo_form": photo_form, "mode": "browse", "cards": []}
    if not form.is_valid():
        return _render(request, "storefront/home.html", context, status=400)
    products = form.filter(search.shop_products())
    if request.method == "POST":
        context["mode"] = "photo"
        if not photo_form.is_valid():
            return _render(request, "storefront/home.html", context, status=400)
        context["preview"] = photo_form.preview
        find, query_form, field = partial(search.photo_search, photo_form.cleaned_data["photo"]), photo_form, "photo"
    elif form.text:
        context["mode"] = "text"
        find, query_form, field = partial(search.text_search, form.text), form, "q"
    else:
        try:  # a page that does not exist is a 404, as in the API, not silently the last page
            page = Paginator(products.order_by("-created_at", "-pk"), RESULTS).page(request.GET.get("page") or 1)
        except InvalidPage:
            raise Http404("There is no such page.") from None
        context.update(page=page, cards=search.browse_cards(page))
        return _render(request, "storefront/home.html", context)
    try:
        with search.search_budget(request):
            context["cards"] = find(products=products, k=RESULTS)
    except search.TooManySearches as exc:
        context["unavailable"] = str(exc)
        return _render(request, "storefront/home.html", context, status=429)
    except search.SearchUnavailable as exc:
        context["unavailable"] = search.shopper_message(exc)
        return _render(request, "storefront/home.html", context, status=503)
    except Rejected as exc:
        query_form.add_error(field, exc.reason)
        return _render(request, "storefront/home.html", context, status=400)
    return _render(request, "storefront/home.html", context)


@require_http_methods(["GET", "HEAD"])
def product(request, pk):
    """A product, "more like this", and the results of ``?change=<words>&method=<method>`` when asked."""
    item = get_object_or_404(search.shop_products().select_related("merchant"), pk=pk)
    asked = bool(request.GET.get("change", "").strip())
    change_form = ChangeForm(request.GET) if asked else ChangeForm()
    context = {
        "product": item, "images": list(item.p2w_images.order_by("position", "pk")),
        "change_form": change_form, "asked": asked, "suggestions": SUGGESTED_CHANGES,
    }
    status = 200
    if asked:
        if not change_form.is_valid():
            status = 400
        else:
            method = change_form.cleaned_data["method"]
            context["method_label"] = METHOD_LABELS.get(method, method)
            try:
                with search.search_budget(request):
                    context["changed"] = search.changed_products(
                        item, change_form.cleaned_data["change"], method=method,
                        products=search.shop_products(), k=CHANGED,
                    )
            except search.TooManySearches as exc:
                context["change_unavailable"], status = str(exc), 429
            except search.SearchUnavailable as exc:
                context["change_unavailable"], status = search.shopper_message(exc), 503
            except Rejected as exc:
                if exc.field == "product":  # the product itself is not indexed yet, the change is fine
                    context["change_unavailable"], status = NOT_INDEXED, 503
                else:
                    change_form.add_error("change", exc.reason)
                status = 400
    try:
        context["similar"] = search.similar_products(item, products=search.shop_products(), k=SIMILAR)
    except search.SearchUnavailable as exc:
        context["similar_unavailable"] = search.shopper_message(exc)
    except Rejected:
        context["similar_unavailable"] = NOT_INDEXED
    return _render(request, "storefront/product.html", context, status=status)


def _render(request, template, context, *, status=200):
    serving = EmbeddingModel.objects.filter(state=EmbeddingModel.State.SERVING).first()
    response = render(request, template, {**context, "serving_model": serving}, status=status)
    if status == 503:
        response["Retry-After"] = "30"
    return response
