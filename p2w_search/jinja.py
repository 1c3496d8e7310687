"""The shopper's "like this, but ..." pieces for a shop whose pages are Jinja2 templates.

A shop with no environment of its own names this module's in its Jinja2 backend::

    TEMPLATES = [
        {"BACKEND": "django.template.backends.jinja2.Jinja2", "DIRS": [BASE_DIR / "jinja2"], "APP_DIRS": True,
         "OPTIONS": {"environment": "p2w_search.jinja.environment"}},
        {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True, ...},  # the admin, the pieces
    ]

and a shop with its own adds the two functions to its globals. A product page then says::

    {{ like_this(request, product) }}
    {{ like_your_photo(request, action="/search/photo/") }}

They take the template tags' options (``products=``, ``per_page=``, ``suggestions=``,
``part=``, ``heading=``, ``cards_template=``; ``action=`` for the photo) and call the same
code (``p2w_search.shopper.pieces``). The pieces' templates stay Django templates, so the
DjangoTemplates backend stays in TEMPLATES. (Not named jinja2.py, which would shadow the package.)
"""

import jinja2
from markupsafe import Markup

from p2w_search.shopper import pieces

__all__ = ["environment", "like_this", "like_your_photo"]


def _request(request, door):
    # A page rendered without the request has an Undefined ``request`` (not None): the same error as the tags'.
    return pieces.needs_request(None if isinstance(request, jinja2.Undefined) else request, door)


def like_this(request, product, **options):
    """The "Like this, but…" box of ``product`` and, when the request asks a change, its results."""
    return Markup(pieces.like_this(_request(request, "{{ like_this(request, ...) }}"), product, **options))


def like_your_photo(request, **options):
    """A photo upload with an optional change and, when the request carries a kept photo, its results."""
    return Markup(pieces.like_your_photo(_request(request, "{{ like_your_photo(request, ...) }}"), **options))


def environment(**options):
    """A Jinja2 environment (Django's Jinja2 backend passes ``options``) with ``like_this`` and ``like_your_photo``."""
    env = jinja2.Environment(**options)
    env.globals.update(like_this=like_this, like_your_photo=like_your_photo)
    return env
