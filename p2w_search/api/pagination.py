"""Page numbers answered in the request's terms, for the app's lists and any shop's."""

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination

from p2w_search.api.parameters import repeated_parameters, whole_number

__all__ = ["PagePagination"]


class PagePagination(PageNumberPagination):
    """DRF's page numbers, answering in the request's terms: ``page`` or ``page_size`` that is not a whole
    number of at least 1 in ASCII digits is a 400 naming it, and so is a ``page_size`` above ``max_page_size`` and
    either given twice; a page past the last is a 404 that says how many pages there are.

    (DRF answers all three with 404 "Invalid page.", ignores a bad ``page_size`` and cuts one
    above the largest to it: ``?page=2&page_size=150`` answered items 101-200.) A page
    past the end stays a 404: the number is well formed, and that page does not exist, as in
    the storefront.
    """

    def get_page_number(self, request, paginator):
        _given_once(request, self.page_query_param)  # ?page=1&page=2 was page 2, silently
        number = super().get_page_number(request, paginator)  # "last" is the last page's number already
        number = _whole_number(number, self.page_query_param, also=self.last_page_strings)
        if number > paginator.num_pages:
            pages = paginator.num_pages
            raise NotFound(f"There is no page {number}: the results have {pages} page{'s' if pages != 1 else ''}.")
        return number

    def get_page_size(self, request):
        name = self.page_size_query_param
        _given_once(request, name)
        if name and request.query_params.get(name):
            size = _whole_number(request.query_params[name], name)
            if self.max_page_size is not None and size > self.max_page_size:
                raise ValidationError({name: [f"Ensure this value is less than or equal to {self.max_page_size}."]})
        return super().get_page_size(request)


def _whole_number(value, name, *, also=()):
    """``value`` as an int of at least 1 in ASCII digits (``whole_number``), or a 400 naming the parameter ``name``."""
    try:
        number = whole_number(value)
    except ValueError:
        number = 0
    if number < 1:
        words = "".join(f" or '{word}'" for word in also)
        raise ValidationError({name: [f"Enter a whole number of at least 1{words}."]})
    return number


def _given_once(request, name):
    """A 400 naming ``name`` when the query string gives it more than once (QueryDict keeps the last, unsaid)."""
    problems = repeated_parameters(request.query_params, {name} if name else set())
    if problems:
        raise ValidationError(problems)
