"""The shoppers' pages: browse and search (words, the shopper's photo, filters), and a product with
"like this, but ...".

"Like this, but ..." (a product or the shopper's photo with changes, refined again, paged
and filtered) is the app's shopper journey, rendered by its template tags
(``{% like_this %}``, ``{% like_your_photo %}``): the same journey a host shop gets. The
views run it first, for the status: a bad filter, photo or change is a 400 with the reason,
and so is a link that gives a parameter twice or bytes that are not UTF-8 (naming it), a
photo gone 410 (or 404 from another browser), a search that cannot run now 503 with a
message and the newest products to browse meanwhile, a page past the end 404 on the shop's
page; browsing needs no model. A change (or a method) with nothing to change, no words and no
photo on the first page, a photo on a product's page, is a 400 that says what to do, the change
kept in the box. The footer names the model that ranked the page's results (an admin may switch
the serving one while a search runs), or on a page that ranks nothing the serving model.
"""

from django.core.paginator import InvalidPage, Paginator
from django.http import HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from p2w_search.api.parameters import whole_number
from p2w_search.models import EmbeddingModel
from p2w_search.search import Rejected
from p2w_search.shopper import journey
from p2w_search.shopper.forms import link_problem
from shop_demo.storefront import search
from shop_demo.storefront.forms import FILTERS, SearchForm

__all__ = ["home", "product"]

RESULTS = 24  # results and browsing, this many a page
CHANGED = 12
SIMILAR = 6
JOURNEY = (journey.PHOTO, journey.CHANGE, journey.METHOD)
SINGLE = ("q", *FILTERS, *journey.SINGLE)  # the parameters a link gives once each (``change`` once per change)
# A photo's link on a product's page: the product would be changed, not the photo the link meant.
NOT_A_PHOTO_PAGE = ("This page changes the product shown, not a photo: to change your photo, add it in “Search with "
                    "your photo” on the shop’s first page.")


@require_http_methods(["GET", "HEAD", "POST"])
def home(request):
    """Browse (newest first), search by words or by the shopper's photo (POST keeps it, then its results' link).

    Filters apply to all three; a search by words or by photo is refined by ``change``s.
    """
    form = SearchForm(request.GET, categories=search.categories())
    context = {"form": form, "mode": "browse", "photo_action": _link(request, drop=("q", *JOURNEY, "page"))}
    problem = link_problem(request, single=SINGLE, read=(*SINGLE, journey.CHANGE))
    if problem:  # a parameter given twice, or bytes that are not text: which search is meant is unknown
        journey.refuse(request, problem)  # the photo box searches nothing either
        blank = SearchForm(QueryDict(), categories=search.categories())  # the boxes empty: start again from them
        blank.is_valid()
        context.update(form=blank, mode="bad-link", problem=problem)
        return _render(request, "storefront/home.html", context, status=400)
    if not form.is_valid():
        journey.refuse(request, "Please check the filters.")  # no results are shown: the photo box searches nothing
        return _render(request, "storefront/home.html", context, status=400)
    products = form.filter(search.shop_products())
    context["products"] = products
    if request.method == "POST":
        photo_form, link = journey.accept_photo(request)  # the photo box shows the form's errors
        if link is not None:
            return HttpResponseRedirect(reverse("storefront:home") + link, status=303)
        context["mode"] = "photo-refused"
        return _render(request, "storefront/home.html", context, status=photo_form.status,
                       retry_after=photo_form.retry_after)
    outcome = None
    if request.GET.get(journey.PHOTO) or not form.text:  # without words, a change can only be a photo's
        outcome = journey.for_photo(request, products=products, per_page=RESULTS, photo_only=True)
    if outcome is not None and outcome.unplaced:  # a change or method with nothing to change: say what to do
        newest = products.order_by("-created_at", "-pk")[:RESULTS]  # a product to choose
        context.update(mode="nothing-to-change", outcome=outcome, browse=search.browse_cards(newest))
        return _render(request, "storefront/home.html", context, status=outcome.status)  # a 400
    if outcome is not None and outcome.asked:
        # The filters form adds the method the search ran with (a link may name none).
        context.update(mode="photo", outcome=outcome, kept=_params(request, journey.PHOTO, journey.CHANGE))
    elif form.text:
        outcome = journey.for_text(request, form.text, products=products, per_page=RESULTS)
        context.update(mode="text", outcome=outcome, kept=_params(request, "q", journey.CHANGE))
    else:
        try:  # a page that does not exist is a 404, as in the API, not silently the last page (nor "1_0" page 10)
            number = whole_number(request.GET.get("page") or "1")
            page = Paginator(products.order_by("-created_at", "-pk"), RESULTS).page(number)
        except (ValueError, InvalidPage):  # said on the shop's page, with the filters kept, not as a missing product
            context.update(mode="no-page", first_page=_link(request, drop=("page",)))
            return _render(request, "storefront/home.html", context, status=404)
        context.update(page=page, cards=search.browse_cards(page))
        return _render(request, "storefront/home.html", context)
    if outcome.status in (429, 503):  # the search cannot run now; the catalog can still be browsed
        context["browse"] = search.browse_cards(products.order_by("-created_at", "-pk")[:RESULTS])
    return _render(request, "storefront/home.html", context, status=outcome.status, ranked_by=[outcome.model],
                   retry_after=outcome.retry_after)


@require_http_methods(["GET", "HEAD"])
def product(request, pk):
    """A product, "more like this", and "like this, but ``?change=...``" (refined by more ``change``s)."""
    item = get_object_or_404(search.shop_products().select_related("merchant"), pk=pk)
    if request.GET.get(journey.PHOTO):
        journey.refuse(request, NOT_A_PHOTO_PAGE)  # the box says it, and searches nothing
    outcome = journey.for_product(request, item, products=search.shop_products(), per_page=CHANGED)
    context = {"product": item, "images": list(item.p2w_images.order_by("position", "pk")), "outcome": outcome}
    ranked_by = [outcome.model]  # "like this, but", then "more like this": a switch between the two, two models
    try:
        context["similar"], similar_model = search.similar_products(item, products=search.shop_products(), k=SIMILAR)
        ranked_by.append(similar_model)
    except search.SearchUnavailable as exc:
        context["similar_unavailable"] = search.shopper_message(exc)
    except Rejected as exc:
        context["similar_unavailable"] = journey.NOT_INDEXED if exc.code == "not_embedded" else exc.reason
    return _render(request, "storefront/product.html", context, status=outcome.status, ranked_by=ranked_by,
                   retry_after=outcome.retry_after)


def _params(request, *names):
    """(name, value) of the request's parameters called ``names``, in order, each value of a repeated one."""
    return [(name, value) for name in names for value in request.GET.getlist(name) if value]


def _link(request, *, drop):
    query = request.GET.copy()
    for name in drop:
        query.pop(name, None)
    return reverse("storefront:home") + ("?" + query.urlencode() if query else "")


def _render(request, template, context, *, status=200, ranked_by=(), retry_after=None):
    """The page, its footer naming the models that ranked its results (``ranked_by``: None for a grid not searched),
    each once in order; a page that ranks nothing names the serving model. The serving model read here may not be
    the one a search of this request began with: an admin may switch models while it runs. A search that cannot run
    now but passes (429, 503) says when to try again: ``retry_after`` seconds, none when at once."""
    ranked = list(dict.fromkeys(model for model in ranked_by if model is not None))
    serving = None if ranked else EmbeddingModel.objects.filter(state=EmbeddingModel.State.SERVING).first()
    response = render(request, template, {**context, "serving_model": serving, "ranked_by": ranked}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response
