"""Page numbers answered in the request's terms, for the app's lists and any shop's."""

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination

__all__ = ["PagePagination"]


class PagePagination(PageNumberPagination):
    """DRF's page numbers, answering in the request's terms: ``page`` or ``page_size`` that is not a whole
    number of at least 1 is a 400 naming it; a page past the last a 404 that says how many pages there are.

    (DRF answers all three with 404 "Invalid page.", and ignores a bad ``page_size``.) A page
    past the end stays a 404: the number is well formed, and that page does not exist, as in
    the storefront.
    """

    def get_page_number(self, request, paginator):
        number = super().get_page_number(request, paginator)  # "last" is the last page's number already
        number = _whole_number(number, self.page_query_param, also=self.last_page_strings)
        if number > paginator.num_pages:
            pages = paginator.num_pages
            raise NotFound(f"There is no page {number}: the results have {pages} page{'s' if pages != 1 else ''}.")
        return number

    def get_page_size(self, request):
        name = self.page_size_query_param
        if name and request.query_params.get(name):
            _whole_number(request.query_params[name], name)
        return super().get_page_size(request)  # at most max_page_size


def _whole_number(value, name, *, also=()):
    """``value`` as an int of at least 1, as Django's paginator reads it, or a 400 naming the parameter ``name``."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        words = "".join(f" or '{word}'" for word in also)
        raise ValidationError({name: [f"Enter a whole number of at least 1{words}."]})
    return number
