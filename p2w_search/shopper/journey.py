"""The "like this, but ..." journey from a request: a product or the shopper's kept photo, changed in words.

The state is all in the query string, so every result page is a link (back, reload, share
within the session): ``change`` once per change in the order asked, ``method``, ``page``,
and ``photo`` (a kept photo's token, p2w_search.photos) for a photo; a link that gives
``photo``, ``method`` or ``page`` twice, or bytes that are not UTF-8 in one of these or a
change, is refused (400, naming it) and searches nothing. So is a change or a method with
nothing to change: on a product's page without a change (``method`` alone), on a page whose
only reference is the shopper's photo without a photo (``for_photo(photo_only=True)``); the
change stays in the box, for the shopper to add the photo to. A page of results with no photo
on a page that shows only the photo's results (``for_photo(photo_page=True)``: PhotoSearchView)
is refused too (400, ``NO_PAGES_YET``). A ``method`` the app does not have is refused wherever
it is given (400, the method field's own message, which lists the methods), on a search by words
or by a photo alone too, which use none, and with nothing to change (said before that). A photo
piece a page renders itself refuses a change that no other piece of the request took
(``change_unclaimed``). A second change is composed with the first as one sentence on the same
reference (``chained_change``: measured against composing on the first result, README "Refining
again"). Pages ask the search service for the top ``page * per_page`` (at most ``MAX_K``).

``for_product`` and ``for_photo`` run the search once per request and remember the answer
on it, so a view may call them first (for the response's status) and the template tags
render the same ``Outcome``.
"""

import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import storages

from p2w_search import photos, search, search_health
from p2w_search.composition import DEFAULT_METHOD, METHODS
from p2w_search.conf import P2WImproperlyConfigured, app_settings
from p2w_search.shopper.forms import MAX_CHANGES, METHOD_LABELS, ChangesForm, PhotoForm, link_problem
from p2w_search.uploads.storage import missing_storage

__all__ = ["SUGGESTED_CHANGES", "PHOTO", "CHANGE", "METHOD", "PAGE", "Card", "Outcome", "chained_change",
           "for_product", "for_photo", "for_text", "accept_photo", "posted_photo_form",
           "shopper_message", "refuse", "SINGLE", "NOTHING_TO_CHANGE", "NO_PAGES_YET", "change_unclaimed",
           "photo_storage_problem"]

SUGGESTED_CHANGES = ("in red", "in blue", "in black", "with stripes", "with polka dots", "with a star print")
PHOTO, CHANGE, METHOD, PAGE = "photo", "change", "method", "page"
SINGLE = (PHOTO, METHOD, PAGE)  # a link gives each of these once; ``change`` once per change
NOT_INDEXED = "This product is not in the search index yet; try again once indexing is done."
# On the page of a product that SEARCH_FILTER leaves out of searches (out of stock, say), which the shop still shows.
NOT_SEARCHED = "This product is not among the products searched now, so there is nothing to search by."
# A change (or a method) on a page whose only reference is the shopper's photo, with no photo: it was dropped unsaid.
NOTHING_TO_CHANGE = "There is nothing to change yet: choose a product or add your photo, then say what to change."
# A page of results (?page=2) on a page of the photo's results alone, with no photo: it was a quiet 200 of no search.
NO_PAGES_YET = "There are no pages of results yet: add your photo to search with it."


def chained_change(changes):
    """The one change a reference is searched with for ``changes`` asked in a row: "in red , with stripes".

    Both changes in one sentence on the first reference, joined as the prompt joins the
    reference and the change: measured better than composing the second change on the first
    search's best product, and than joining with "and" (README, "Refining again").
    """
    return " , ".join(changes)


@dataclass(frozen=True)
class Card:
    """One product of a grid, with the image to show (the best match when it was searched) and its score."""

    product: object
    image: object
    score: float | None = None


@dataclass
class Outcome:
    """What a shopper's request for "like this, but ..." came to, for a template (and a view's status)."""

    kind: str  # "product" or "photo"
    request: object
    asked: bool = False  # the request carries a change (product) or a photo
    status: int = 200
    retry_after: int = None  # with a 429 or 503: seconds before trying again is worth it (Retry-After); None: now
    form: object = None  # ChangesForm of the request's changes, with errors
    changes: list = field(default_factory=list)
    method: str = DEFAULT_METHOD
    cards: list = field(default_factory=list)
    searched: bool = False  # a search ran and ``cards`` is its page
    model: object = None  # the EmbeddingModel that ranked ``cards`` when searched (the serving one may differ now)
    page: int = 1
    has_next: bool = False
    notice: str = ""  # why there are no results: search unavailable, the photo gone, no such page
    reference: object = None  # the product, for kind "product"
    photo: object = None  # photos.KeptPhoto, for kind "photo"
    suggestions: tuple = SUGGESTED_CHANGES
    # What was asked with no photo: "change" (a change or method: NOTHING_TO_CHANGE), "page" (NO_PAGES_YET); "" none.
    unplaced: str = ""

    @property
    def method_label(self):
        return METHOD_LABELS.get(self.method, self.method)

    @property
    def headline(self):
        """The first words of the notice or error, by status (none for a missing page or photo: the notice says it)."""
        if self.status in (429, 503):
            return "Search is unavailable right now."
        if self.status == 400:
            return "Please check the change you asked for." if self.changes else "Please check your search."
        return ""

    @property
    def sentence(self):
        return chained_change(self.changes)

    @property
    def typed(self):
        """The request's changes as typed, blank ones dropped (one more than allowed at most): what a box shows
        again when they were refused before any search, so that the shopper does not type them again."""
        typed = (str(text).strip() for text in self.request.GET.getlist(CHANGE))
        return [text for text in typed if text][:MAX_CHANGES + 1]

    @property
    def change_to_keep(self):
        """What a box's change field shows. A product's: the first change asked, as typed when the link was refused
        before any search. The photo box: the changes typed, as one sentence, when a link was refused before any
        photo was searched (no photo to change, two photos); else "" (the box is for another photo)."""
        if self.kind == "product":
            return (self.changes or self.typed or [""])[0]
        if self.kind != "photo" or self.photo is not None or self.status != 400:
            return ""
        return chained_change(self.typed)

    # Links: the request's query string with the journey's parameters changed, the rest (filters) kept.
    def _link(self, **params):
        query = self.request.GET.copy()
        query.pop(PAGE, None)
        for name, value in params.items():
            if value is None:
                query.pop(name, None)
            else:
                query.setlist(name, value if isinstance(value, list) else [value])
        return "?" + query.urlencode() if query else "?"

    def page_link(self, number):
        return self._link(**{PAGE: str(number) if number > 1 else None})

    @property
    def previous_link(self):
        return self.page_link(self.page - 1) if self.page > 1 else None

    @property
    def next_link(self):
        return self.page_link(self.page + 1) if self.has_next else None

    @property
    def steps(self):
        """[(change, link to the results up to it, link without it)] for each change asked, in order."""
        return [(text, self._link(**{CHANGE: self.changes[:i + 1]}),
                 self._link(**{CHANGE: (self.changes[:i] + self.changes[i + 1:]) or None}))
                for i, text in enumerate(self.changes)]

    @property
    def starts(self):
        """[(suggestion, link that asks it as the only change)]: a fresh start from the reference."""
        return [(text, self._link(**{CHANGE: [text]})) for text in self.suggestions]

    @property
    def refinements(self):
        """[(suggestion, link that adds it as the next change)], the ones not asked yet."""
        return [(text, self._link(**{CHANGE: [*self.changes, text], METHOD: self.method}))
                for text in self.suggestions if text not in self.changes]

    @property
    def kept(self):
        """(name, value) of the query string's parameters a refine form sends again as hidden inputs."""
        return [(name, value) for name, values in self.request.GET.lists() if name not in (PAGE, METHOD)
                for value in values]


def _memo(request):
    if not hasattr(request, "_p2w_journeys"):
        request._p2w_journeys = {}
    return request._p2w_journeys


def for_product(request, product, *, products=None, per_page=12, suggestions=SUGGESTED_CHANGES):
    """"Like ``product``, but ``?change=...``": the Outcome of this request (run once, then remembered on it).

    ``products`` (a queryset) limits the results, e.g. to the page's filters; the product
    itself is left out. Without a change or a method in the request (or a refusal: ``refuse``),
    the Outcome only holds an empty form; a method without a change is refused (400, "Say what to change").
    """
    key = ("product", product.pk)
    memo = _memo(request)
    if key not in memo:
        outcome = Outcome(kind="product", request=request, reference=product, suggestions=tuple(suggestions))
        if CHANGE in request.GET or METHOD in request.GET or ("refused",) in memo:
            _run(outcome, products, per_page, lambda text, method, k, products: search.composed(
                text=text, product=product, method=method, products=products, k=k))
        memo[key] = outcome
    return memo[key]


def for_photo(request, *, products=None, per_page=24, suggestions=SUGGESTED_CHANGES, photo_only=False,
              photo_page=False):
    """The shopper's kept photo (``?photo=<token>``), with the changes asked if any: this request's Outcome.

    Without a change it is a search by the photo alone. A photo this session did not upload
    is refused (404), one past ``PHOTO_KEEP_SECONDS`` too (410), each with a message.
    ``photo_only``: the page has no other reference than the photo (no words, no product), so a
    change or method without a photo is refused (400, ``NOTHING_TO_CHANGE``) instead of dropped
    unsaid; the box shows the change again (``change_to_keep``) and the method. ``photo_page``: the
    page shows the photo's results and nothing else (PhotoSearchView), so its ``page`` pages them:
    a page other than the first without a photo is refused (400, ``NO_PAGES_YET``), not a quiet
    page of no search. (A page with pages of its own, the demo's newest products, passes False.)
    """
    key = ("photo",)
    memo = _memo(request)
    if key not in memo:
        outcome = Outcome(kind="photo", request=request, suggestions=tuple(suggestions))
        token = request.GET.get(PHOTO)
        problem = _link_problem(request)
        unplaced = "" if token else _unplaced(request, photo_only=photo_only, photo_page=photo_page)
        if problem and (any(request.GET.getlist(PHOTO)) or unplaced):  # of two photos, which one is meant is unknown
            outcome.asked, outcome.status, outcome.notice = True, 400, problem
        elif unplaced:
            outcome.asked, outcome.unplaced, outcome.status = True, unplaced, 400
            nothing = NOTHING_TO_CHANGE if unplaced == "change" else NO_PAGES_YET
            outcome.notice = " ".join(filter(None, (_unknown_method(request), nothing)))
            if request.GET.get(METHOD) in METHODS:  # shown chosen in the box
                outcome.method = request.GET[METHOD]
            search_health.record("page-photo", 400, {})  # as _run counts a refused request
        elif token:
            outcome.asked = True
            _photo_storage_ready()
            try:
                outcome.photo = photos.load(request, token)
            except (photos.PhotoGone, photos.PhotoUnreadable) as exc:  # 404/410, or 503 while its storage fails
                outcome.status, outcome.notice = exc.status, exc.reason
                if exc.status == 503:
                    outcome.retry_after = search.RETRY_AFTER_SECONDS
            else:
                data = outcome.photo.data

                def find(text, method, k, products):
                    if text is None:
                        return search.image(data, products=products, k=k)
                    return search.composed(text=text, image=data, method=method, products=products, k=k)

                _run(outcome, products, per_page, find, changes_required=False)
        memo[key] = outcome
    return memo[key]


def _unplaced(request, *, photo_only, photo_page):
    """What a request without a photo asks that only a photo could answer: "change", "page", or "" (nothing)."""
    if photo_only and (CHANGE in request.GET or METHOD in request.GET):
        return "change"
    pages = request.GET.getlist(PAGE)
    if photo_page and pages and (len(pages) > 1 or _page(request) != 1):  # "?page=1" is the page itself
        return "page"
    return ""


def _unknown_method(request):
    """The method field's own words when the request names a method the app does not have, else "".

    A request with nothing to change searches nothing, so no form read its method: "?method=bogus"
    said only that there was nothing to change, as if the method were one. It is said in the words
    of the pages whose form reads it (a search by words, a product's change), the methods listed.
    """
    try:
        ChangesForm.base_fields[METHOD].clean(request.GET.get(METHOD, ""))
    except ValidationError as exc:
        return " ".join(exc.messages)
    return ""


def change_unclaimed(request):
    """Whether no other piece of this request took its change: no product's box or search by words ran, no refusal
    said why the link is wrong, no photo upload was read. A photo piece that a page renders itself then answers a
    change sent without a photo (``for_photo(photo_only=True)``) instead of dropping it unsaid. Only the pieces run
    so far are known: a view that runs the product's first (for its status, as the demo's does) settles it."""
    return not any(key[0] in ("product", "text", "refused", "photo_form") for key in _memo(request))


def for_text(request, q, *, products=None, per_page=24, suggestions=SUGGESTED_CHANGES):
    """Products matching the words ``q``, refined by the changes asked (``q`` and the changes searched as one text)."""
    key = ("text", q)
    memo = _memo(request)
    if key not in memo:
        outcome = Outcome(kind="text", request=request, suggestions=tuple(suggestions))
        _run(outcome, products, per_page, lambda text, method, k, products: search.text(
            f"{q} {text}" if text else q, products=products, k=k), changes_required=False)
        memo[key] = outcome
    return memo[key]


def _run(outcome, products, per_page, find, *, changes_required=True):
    """Validate the request's changes and page, then search and fill ``outcome`` (status, cards, notice)."""
    request = outcome.request
    outcome.asked = True
    problem = _link_problem(request)
    if problem:
        outcome.status, outcome.notice = 400, problem
        search_health.record(f"page-{outcome.kind}", 400, {})
        return
    asked = [str(c).strip() for c in request.GET.getlist(CHANGE) if str(c).strip()]
    if asked or changes_required or METHOD in request.GET:
        form = outcome.form = ChangesForm(request.GET)
        # Words or a photo alone need no change; a method they do not use is still checked: "?q=red&method=bogus"
        # was searched as if the method were one, where a product's page refused it.
        form.fields[CHANGE].required = changes_required
        if not form.is_valid():
            # Shown with a link to take each back: one more than allowed at most (a link of 999 changes
            # drew 999 links of 999 changes each, two minutes of CPU for one page).
            outcome.changes, outcome.status = asked[:MAX_CHANGES + 1], 400
            outcome.method = form.cleaned_data.get(METHOD) or outcome.method  # a valid method stays chosen
            search_health.record(f"page-{outcome.kind}", 400, {})  # as the API counts a refused request
            return
        outcome.changes, outcome.method = form.cleaned_data[CHANGE], form.cleaned_data[METHOD]
    page, most = _page(request), int(app_settings.MAX_K)
    if page is None or (page - 1) * per_page >= most:
        outcome.status, outcome.notice = 404, "There is no such page of results."
        return
    outcome.page = page
    text = chained_change(outcome.changes) if outcome.changes else None
    try:
        results = _counted_search(request, outcome.kind,
                                  lambda: find(text, outcome.method, min(page * per_page + 1, most), products))
    except search.TooManySearches as exc:
        outcome.status, outcome.notice, outcome.retry_after = 429, str(exc), exc.retry_after
        return
    except search.Unavailable as exc:
        outcome.status, outcome.notice, outcome.retry_after = 503, shopper_message(exc), exc.retry_after
        return
    except search.Rejected as exc:
        if exc.field == "product" and exc.code == "not_embedded":  # the change is fine, the search waits
            outcome.status, outcome.notice, outcome.retry_after = 503, NOT_INDEXED, search.RETRY_AFTER_SECONDS
        elif exc.field == "product":  # no image to search by, or a product the search leaves out: waiting will not help
            outcome.notice = NOT_SEARCHED if exc.code == "not_visible" else exc.reason
        elif outcome.form is not None and exc.field == "text":
            outcome.form.add_error(CHANGE, exc.reason)
            outcome.status = 400
        else:
            outcome.status, outcome.notice = 400, exc.reason
        return
    start = (page - 1) * per_page
    hits = results.hits[start:start + per_page]
    if page > 1 and not hits:
        outcome.status, outcome.notice = 404, "There is no such page of results."
        return
    outcome.has_next = len(results.hits) > page * per_page
    outcome.cards = [Card(product=p, image=image, score=score) for p, image, score in results.products(hits)]
    outcome.searched, outcome.model = True, results.model


def refuse(request, reason):
    """Refuse this request's link for the page's own reason (a shopper's sentence): the journey's outcomes of this
    request say it (400) and search nothing, the boxes included."""
    _memo(request)[("refused",)] = reason


def _link_problem(request):
    return _memo(request).get(("refused",)) or link_problem(request, single=SINGLE, read=(*SINGLE, CHANGE))


def _counted_search(request, kind, run):
    """``run()`` within the client's budget, counted in the admin's search health as "page-<kind>" (as the API's)."""
    started, status, results = time.perf_counter(), 500, None
    try:
        with search.search_budget(request):
            results = run()
        status = 200
        return results
    except search.SearchError as exc:
        status = exc.status
        raise
    finally:
        timings = results.timings if results is not None else {}
        search_health.record(f"page-{kind}", status, {**timings, "total": (time.perf_counter() - started) * 1000})


def _page(request):
    """The page asked for, from 1; None for any other value ("0", "²", "-1", thousands of digits)."""
    value = request.GET.get(PAGE) or "1"
    if not (value.isascii() and value.isdigit()) or len(value) > 9:  # int() refuses "²" and 5000 digits
        return None
    return int(value) or None


def accept_photo(request):
    """Read a photo upload (POST: ``photo``, optional ``change`` and ``method``); keep it when it can be used.

    Returns (form, link): the PhotoForm (with errors when the photo or change cannot be
    used, or the server could not keep the photo: ``form.status`` 503) and, when valid, the
    query string of its result page: the request's own query string (filters) with ``photo``
    set to the kept photo's token, and the change and method. Without a usable uploads storage it
    raises P2WImproperlyConfigured with ``photo_storage_problem()``'s words, before reading the photo.
    """
    _photo_storage_ready()
    try:  # each upload is decoded and kept for a while: it counts in the client's budget, as a search does
        with search.search_budget(request):
            form = PhotoForm(request.POST, request.FILES)
            valid = form.is_valid()
    except search.TooManySearches as exc:
        form, valid = PhotoForm(request.POST, request.FILES, refused=str(exc)), False
        form.status, form.retry_after = 429, exc.retry_after
        form.is_valid()
    _memo(request)[("photo_form",)] = form
    if not valid:
        return form, None
    try:
        token = photos.keep(request, form.cleaned_data["photo"])
    except photos.PhotoNotKept as exc:
        form.add_error("photo", str(exc))
        form.status, form.retry_after = 503, search.RETRY_AFTER_SECONDS
        return form, None
    query = request.GET.copy()
    for name in (PAGE, CHANGE, METHOD, PHOTO):
        query.pop(name, None)
    query[PHOTO] = token
    if form.cleaned_data["change"]:
        query[CHANGE] = form.cleaned_data["change"]
    query[METHOD] = form.cleaned_data["method"]
    return form, "?" + query.urlencode()


def photo_storage_problem(by="the photo search"):
    """Why shoppers' photos cannot be kept, in a sentence naming the setting and what to set; None when they can.

    They are kept in ``P2W_SEARCH["UPLOAD_STORAGE"]`` (p2w_search.photos), which a shop that takes no
    catalog uploads may not have: ``manage.py check`` says this sentence (E028, with ``by`` naming the
    page), and accept_photo raises it, instead of the uploads' own words about merchants' files.
    """
    alias, where = app_settings.UPLOAD_STORAGE, f"where {by} keeps shoppers' photos"
    if alias not in settings.STORAGES:
        return missing_storage(where)
    try:  # storages, not upload_backend(): that one reports a BACKEND it cannot import as a storage not there
        storages[alias]
    except Exception as exc:  # noqa: BLE001 (any storage's constructor: its OPTIONS, its connection)
        return (f"STORAGES[{alias!r}] (P2W_SEARCH['UPLOAD_STORAGE']), {where}, cannot be made "
                f"({exc or type(exc).__name__}): fix its BACKEND or OPTIONS.")
    return None


def _photo_storage_ready():
    problem = photo_storage_problem()
    if problem is not None:  # the shop's configuration, not the shopper's photo: a server error that says what to set
        raise P2WImproperlyConfigured(problem)


def posted_photo_form(request):
    """The PhotoForm that ``accept_photo`` read from this request (its errors shown by the box), or None."""
    return _memo(request).get(("photo_form",))


def shopper_message(unavailable):
    """What a page says when a search cannot run now (search.Unavailable), in a shopper's words."""
    if unavailable.code == "not_ready":
        return "Search is not ready yet: the catalog is still being indexed. Browse the products meanwhile."
    if unavailable.code == "model_changed":  # not busy: the next search runs under the model that serves now
        return unavailable.reason
    return f"Search is busy right now. {unavailable.reason}"
