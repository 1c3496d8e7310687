"""Error pages of the demo shop."""

from django.http import JsonResponse
from django.views.defaults import page_not_found


def not_found(request, exception=None):
    """404 in JSON under /api/ (clients parse it), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
