"""A page for the shopper's own photo, for a host shop to mount: upload, results, refine again.

    path("search/photo/", PhotoSearchView.as_view(template_name="shop/photo_search.html"), name="photo-search")

The template renders ``{% like_your_photo %}`` (``{% load p2w_search %}``). A POST keeps the
photo (p2w_search.photos) and answers 303 to this page's results (``?photo=<token>&change=...``),
so reload, back and paging never send the photo again; a photo or change that cannot be used
is answered 400 on the page, the reasons at the fields. A GET answers with the status of the
search it shows (400, 404/410 for a photo gone, 429, 503: with ``Retry-After``), the page itself rendered in every case;
a change or method without a photo is a 400 that says to add one (the change kept in the box), and
so is a page of results without a photo (``?page=2``: there are no pages before a search).
"""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponseRedirect
from django.utils.decorators import method_decorator
from django.views.generic import TemplateView

from p2w_search.shopper import journey

__all__ = ["PhotoSearchView"]

@method_decorator(login_not_required, name="dispatch")  # anyone may search, under LoginRequiredMiddleware too
class PhotoSearchView(TemplateView):
    template_name = "p2w_search/like_this/photo_page.html"
    per_page = 24

    def get_products(self):
        """The products results may show (a queryset, e.g. filtered by the page's parameters); None: all visible."""
        return None  # noqa: RET501 (the hook's contract: None means every visible product)

    def get(self, request, *args, **kwargs):
        # photo_only: the page's one reference is the photo, so a change without one is refused, not dropped unsaid;
        # photo_page: its pages are the photo's results, so a page of them without a photo is refused too
        outcome = journey.for_photo(request, products=self.get_products(), per_page=self.per_page, photo_only=True,
                                    photo_page=True)
        context = self.get_context_data(outcome=outcome, **kwargs)
        return self._answer(context, outcome.status, outcome.retry_after)

    def post(self, request, *args, **kwargs):
        form, link = journey.accept_photo(request)
        if link is not None:
            return HttpResponseRedirect(request.path + link, status=303)
        return self._answer(self.get_context_data(photo_form=form, **kwargs), form.status, form.retry_after)

    def _answer(self, context, status, retry_after):
        """The page with ``status``; a 429 or 503 that passes says when to come back (``retry_after`` seconds), as the
        demo's pages and the API do. A search whose model was switched under it passes at once: no Retry-After."""
        response = self.render_to_response(context, status=status)
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return response
