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
Each tag is a door onto ``p2w_search.shopper.pieces``, as the Jinja2 globals of
``p2w_search.jinja`` are: a Jinja2 page shows the same pieces.
"""

from django import template

from p2w_search.shopper import journey, pieces

__all__ = ["like_this", "like_your_photo"]

register = template.Library()


def _request(context, tag):
    return pieces.needs_request(getattr(context, "request", None) or context.get("request"), f"{{% {tag} %}}")


@register.simple_tag(takes_context=True)
def like_this(context, product, *, products=None, per_page=12, suggestions=journey.SUGGESTED_CHANGES, part=None,
              heading="h2", cards_template=None):
    """The "Like this, but…" box of ``product`` and, when the request asks a change, its results."""
    return pieces.like_this(_request(context, "like_this"), product, products=products, per_page=per_page,
                            suggestions=suggestions, part=part, heading=heading, cards_template=cards_template)


@register.simple_tag(takes_context=True)
def like_your_photo(context, *, products=None, per_page=24, suggestions=journey.SUGGESTED_CHANGES, part=None,
                    heading="h2", cards_template=None, action=""):
    """A photo upload with an optional change and, when the request carries a kept photo, its results."""
    return pieces.like_your_photo(_request(context, "like_your_photo"), products=products, per_page=per_page,
                                  suggestions=suggestions, part=part, heading=heading, cards_template=cards_template,
                                  action=action)
