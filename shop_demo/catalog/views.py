from django.db.models import Count
from django.shortcuts import render

from p2w_search.models import EmbeddingModel, ImageEmbedding
from shop_demo.catalog.models import Product


def home(request):
    """The demo's landing page: what is indexed, and links to try the search API."""
    serving = EmbeddingModel.objects.filter(state=EmbeddingModel.State.SERVING).first()
    states = dict(
        ImageEmbedding.objects.filter(model=serving).values_list("state").annotate(n=Count("id"))
    ) if serving else {}
    sample = Product.objects.order_by("id").first()
    return render(request, "home.html", {
        "products": Product.objects.count(), "serving": serving, "states": states, "sample": sample,
    })
