"""A page of the shop's own: "like this, but ..." for a product, through p2w-search's search service."""

from django.shortcuts import get_object_or_404, render
from oscar.core.loading import get_model

from p2w_search import search

Product = get_model("catalogue", "Product")


def like_this(request, pk):
    product = get_object_or_404(Product.objects.browsable(), pk=pk)
    change = request.GET.get("but", "").strip()
    context, status = {"product": product, "change": change, "results": []}, 200
    if change:
        try:
            with search.search_budget(request):  # the anonymous budget the API counts too
                found = search.composed(text=change, product=product, products=Product.objects.browsable(), k=12)
            context["results"] = found.products()
        except search.SearchError as exc:  # Rejected 400, TooManySearches 429, Unavailable 503
            context["error"], status = exc.reason, exc.status
    return render(request, "myshop/like_this.html", context, status=status)
