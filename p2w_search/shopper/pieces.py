"""The shopper's two pieces of a page, rendered to HTML: one function each, whatever the template language.

``like_this`` is the "Like this, but…" box of a product and, when the request asks a change,
its results; ``like_your_photo`` is the photo box and, when the request carries a kept photo,
its results. The template tags (``p2w_search.templatetags.p2w_search``) and the Jinja2 globals
(``p2w_search.jinja``) are thin doors onto these two, so both kinds of page show the same
pieces. The pieces' own templates are Django templates under ``p2w_search/like_this/``, always
rendered with the request (the CSRF token of the photo form; the assets once a page).
"""

from urllib.parse import urlsplit

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.template.loader import render_to_string

from p2w_search.conf import app_settings
from p2w_search.shopper import journey
from p2w_search.shopper.forms import METHOD_LABELS, PhotoForm

__all__ = ["like_this", "like_your_photo", "needs_request"]

CARDS = "p2w_search/like_this/cards.html"
PARTS = (None, "box", "results")
MAX_SIDE = 1600  # the browser scales a photo down to this many pixels on its long side before sending it


def needs_request(request, door):
    """Return ``request``; raise ImproperlyConfigured naming ``door`` (how the page calls the piece) when it is None."""
    if request is None:
        raise ImproperlyConfigured(f"{door} needs the request in the template context: render the page "
                                   "with render(request, ...) or the request context processor.")
    return request


def _common(request, outcome, *, part, heading, cards_template):
    if part not in PARTS:
        raise template.TemplateSyntaxError(f"part must be 'box' or 'results', not {part!r}")
    # The first piece of a request includes the script and the style sheet, whichever door it came through.
    first_asset = not getattr(request, "_p2w_assets_sent", False)
    request._p2w_assets_sent = True
    return {"outcome": outcome, "part": part, "heading": heading, "cards_template": cards_template or CARDS,
            "methods": METHOD_LABELS.items(), "assets": first_asset}


def _photo_search_here(request, part, action):
    """Whether this piece is the page's photo search: its results show here, or its box posts to this page. A box
    that posts elsewhere (a header's, to the shop's photo page) is a door, and a change on this page is not its."""
    return part != "box" or urlsplit(action).path in ("", request.path)


def like_this(request, product, *, products=None, per_page=12, suggestions=journey.SUGGESTED_CHANGES, part=None,
              heading="h2", cards_template=None):
    """The "Like this, but…" box of ``product`` and, when the request asks a change, its results (safe HTML)."""
    outcome = journey.for_product(request, product, products=products, per_page=per_page, suggestions=suggestions)
    return render_to_string("p2w_search/like_this/product.html",
                            _common(request, outcome, part=part, heading=heading, cards_template=cards_template),
                            request=request)


def like_your_photo(request, *, products=None, per_page=24, suggestions=journey.SUGGESTED_CHANGES, part=None,
                    heading="h2", cards_template=None, action=""):
    """A photo upload with an optional change and, when the request carries a kept photo, its results (safe HTML).

    On the page's photo search (``_photo_search_here``), a change or method sent without a photo that
    no other piece of the request took is refused in words (400 in the piece, the change kept in the
    box), as PhotoSearchView refuses it: it was dropped unsaid. The page's status stays its view's.
    """
    photo_only = _photo_search_here(request, part, action) and journey.change_unclaimed(request)
    outcome = journey.for_photo(request, products=products, per_page=per_page, suggestions=suggestions,
                                photo_only=photo_only)
    form = journey.posted_photo_form(request) or PhotoForm(initial={"method": outcome.method})
    values = {
        **_common(request, outcome, part=part, heading=heading, cards_template=cards_template),
        # Read by like_this.js as numbers: text, so that a site that localizes numbers (USE_THOUSAND_SEPARATOR, "1 600")
        # does not hand the script "1 600", which it read as 1 pixel (the templates unlocalize them too).
        "form": form, "action": action, "max_side": str(MAX_SIDE), "max_bytes": str(int(app_settings.MAX_IMAGE_BYTES)),
    }
    return render_to_string("p2w_search/like_this/photo.html", values, request=request)
