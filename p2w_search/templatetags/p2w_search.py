"""Template tags of the shopper's "like this, but ..." journey, for any shop's templates.

    {% load p2w_search %}
    {% like_this product %}              the "Like this, but…" box of a product page and, when the
                                         request asks a change (?change=in+red), its results
    {% like_your_photo %}                a photo upload with an optional change and, when the request
                                         carries a kept photo (?photo=<token>), its results

Both take ``products=`` (a queryset limiting the results, e.g. the page's filters),
``per_page=``, ``suggestions=`` (a list of changes to offer), ``part="box"`` or
``part="results"`` (one of the two, to place them apart), ``heading=`` (the results'
heading element, default ``h2``) and ``cards_template=`` (the template of a grid of results,
given ``cards`` and ``name``; default ``p2w_search/like_this/cards.html``).
``like_your_photo`` also takes ``action=`` (where the photo is posted: a page served by
``p2w_search.shopper.views.PhotoSearchView`` or a view calling ``journey.accept_photo``;
default the current page). The request must be in the context (``render(request, ...)``).
The templates under ``p2w_search/like_this/`` can be overridden like any app template.
"""

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.template.loader import render_to_string

from p2w_search.conf import app_settings
from p2w_search.shopper import journey
from p2w_search.shopper.forms import METHOD_LABELS, PhotoForm

__all__ = ["like_this", "like_your_photo"]

register = template.Library()

CARDS = "p2w_search/like_this/cards.html"
PARTS = (None, "box", "results")
MAX_SIDE = 1600  # the browser scales a photo down to this many pixels on its long side before sending it


def _request(context, tag):
    request = getattr(context, "request", None) or context.get("request")
    if request is None:
        raise ImproperlyConfigured(f"{{% {tag} %}} needs the request in the template context: render the page "
                                   "with render(request, ...) or the request context processor.")
    return request


def _common(request, outcome, *, part, heading, cards_template):
    if part not in PARTS:
        raise template.TemplateSyntaxError(f"part must be 'box' or 'results', not {part!r}")
    first_asset = not getattr(request, "_p2w_assets_sent", False)
    request._p2w_assets_sent = True
    return {"outcome": outcome, "part": part, "heading": heading, "cards_template": cards_template or CARDS,
            "methods": METHOD_LABELS.items(), "assets": first_asset}


@register.simple_tag(takes_context=True)
def like_this(context, product, *, products=None, per_page=12, suggestions=journey.SUGGESTED_CHANGES, part=None,
              heading="h2", cards_template=None):
    """The "Like this, but…" box of ``product`` and, when the request asks a change, its results."""
    request = _request(context, "like_this")
    outcome = journey.for_product(request, product, products=products, per_page=per_page, suggestions=suggestions)
    return render_to_string("p2w_search/like_this/product.html",
                            _common(request, outcome, part=part, heading=heading, cards_template=cards_template),
                            request=request)


@register.simple_tag(takes_context=True)
def like_your_photo(context, *, products=None, per_page=24, suggestions=journey.SUGGESTED_CHANGES, part=None,
                    heading="h2", cards_template=None, action=""):
    """A photo upload with an optional change and, when the request carries a kept photo, its results."""
    request = _request(context, "like_your_photo")
    outcome = journey.for_photo(request, products=products, per_page=per_page, suggestions=suggestions)
    form = journey.posted_photo_form(request) or PhotoForm(initial={"method": outcome.method})
    values = {
        **_common(request, outcome, part=part, heading=heading, cards_template=cards_template),
        # Read by like_this.js as numbers: text, so that a site that localizes numbers (USE_THOUSAND_SEPARATOR, "1 600")
        # does not hand the script "1 600", which it read as 1 pixel (the templates unlocalize them too).
        "form": form, "action": action, "max_side": str(MAX_SIDE), "max_bytes": str(int(app_settings.MAX_IMAGE_BYTES)),
    }
    return render_to_string("p2w_search/like_this/photo.html", values, request=request)
