"""The demo shop's product API: anyone reads; a merchant changes only its own products."""

from contextlib import contextmanager

from django.db import IntegrityError
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils.functional import cached_property
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.exceptions import APIException, PermissionDenied

from p2w_search import locks
from p2w_search.api.pagination import PagePagination
from p2w_search.api.parameters import repeated_parameters, unknown_parameters
from p2w_search.api.schema import errors
from shop_demo.catalog.imports import ProductImportSerializer
from shop_demo.catalog.models import Product, sku_reads_the_same, sku_taken
from shop_demo.catalog.serializers import DUPLICATE_SKU, ProductSerializer, same_looking_sku

NOT_A_MERCHANT = "Only merchants add and change products: this account sells for no merchant."


class ProductBusy(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = ("Another change of this product is being written, most likely an import of your catalog that "
                      "has not ended yet; try again once it has.")
    default_code = "product_busy"


@contextmanager
def bounded_lock_wait():
    """A transaction whose writes wait ``locks.LOCK_WAIT_MS`` at most for a row another one holds; then a 409."""
    try:
        with locks.bounded_lock_wait():
            yield
    except locks.RowsBusy:
        raise ProductBusy() from None


class IsOwningMerchantOrReadOnly(permissions.BasePermission):
    message = "Only the merchant that sells this product may change it."

    def has_permission(self, request, view):
        """Anyone reads; only a merchant writes, refused before its body is judged (a shopper's or staff's POST
        with a bad price was a 400 about the price, then a 403 once corrected)."""
        if request.method in permissions.SAFE_METHODS:
            return True
        if not request.user.is_authenticated:
            return False  # 401
        if view.merchant is None:  # ProductViewSet.merchant
            raise PermissionDenied(NOT_A_MERCHANT)
        return True

    def has_object_permission(self, request, view, obj):
        if request.method in permissions.SAFE_METHODS:
            return True
        return view.merchant is not None and obj.merchant_id == view.merchant.pk  # ProductViewSet.merchant


class ProductPagination(PagePagination):
    """Pages of the catalog: an unpaginated list of 111,000 products took 5 s and 17.6 MB."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


@extend_schema_view(
    list=extend_schema(responses={200: ProductSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(responses={200: ProductSerializer, **errors(404)}),
    create=extend_schema(responses={201: ProductSerializer, **errors(400, 401, 403, 409)}),
    update=extend_schema(responses={200: ProductSerializer, **errors(400, 401, 403, 404, 409)}),
    partial_update=extend_schema(responses={200: ProductSerializer, **errors(400, 401, 403, 404, 409)}),
    destroy=extend_schema(responses={204: None, **errors(401, 403, 404, 409)}),
)
class ProductViewSet(viewsets.ModelViewSet):
    queryset = Product.objects.filter(listed=True).select_related("merchant")
    serializer_class = ProductSerializer
    permission_classes = [IsOwningMerchantOrReadOnly]
    pagination_class = ProductPagination
    # Ids as written, in the digits 0-9: the router's default ([^/.]+) let "1_0" through to int(), product 10.
    lookup_value_regex = "[0-9]+"

    @cached_property
    def merchant(self):
        """The requesting user's merchant, or None."""
        user = getattr(self.request, "user", None)
        return ProductImportSerializer.merchant_for(user) if user is not None else None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.check_query_parameters(request.query_params)

    def check_query_parameters(self, query):
        """Refuse a query parameter the request does not read, or one given twice, naming it (a 400).

        ``?ordering=-price``, ``?merchant=rival`` or ``?listed=false`` answered the whole catalog
        as if they had been applied, and ``?page=1&page=2`` the last page.
        """
        known = {"format"}
        if self.action == "list":
            known |= {self.paginator.page_query_param, self.paginator.page_size_query_param}
        problems = {**unknown_parameters(query, known), **repeated_parameters(query, known)}
        if problems:
            raise serializers.ValidationError(problems)

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.request.method not in permissions.SAFE_METHODS:
            # A merchant may change its unlisted products too; another's stay as hidden as a GET finds them.
            return Product.objects.filter(Q(listed=True) | Q(merchant=self.merchant)) if self.merchant else queryset
        return queryset

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.request is not None and self.request.method not in permissions.SAFE_METHODS:
            context["merchant"] = self.merchant
        return context

    def perform_create(self, serializer):
        self._save(serializer, merchant=self.merchant)

    def perform_update(self, serializer):
        with bounded_lock_wait():
            self._lock_or_404(serializer.instance)
            self._save(serializer)

    def perform_destroy(self, instance):
        with bounded_lock_wait():
            self._lock_or_404(instance)
            instance.delete()

    @staticmethod
    def _lock_or_404(product):
        """Lock the product before it is written: gone since the request read it, it is a 404 as for any id that is
        no product (a delete committed meanwhile made the UPDATE find no row: a 500)."""
        get_object_or_404(Product.objects.select_for_update().only("pk"), pk=product.pk)

    @staticmethod
    def _save(serializer, **values):
        """Save; a SKU another request gave the merchant since the check is refused as the check refuses it."""
        try:
            with bounded_lock_wait():
                serializer.save(**values)
        except IntegrityError as error:
            if not sku_taken(error):
                raise
            reason = same_looking_sku() if sku_reads_the_same(error) else DUPLICATE_SKU
            raise serializers.ValidationError({"sku": [reason]}) from None
