"""The demo shop's product API: anyone reads; a merchant changes only its own products."""

from rest_framework import permissions, serializers, viewsets
from rest_framework.exceptions import PermissionDenied

from shop_demo.catalog.imports import ProductImportSerializer
from shop_demo.catalog.models import Product
from shop_demo.catalog.serializers import ProductSerializer


class IsOwningMerchantOrReadOnly(permissions.BasePermission):
    message = "Only the merchant that sells this product may change it."

    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS or request.user.is_authenticated

    def has_object_permission(self, request, view, obj):
        if request.method in permissions.SAFE_METHODS:
            return True
        merchant = ProductImportSerializer.merchant_for(request.user)
        return merchant is not None and obj.merchant_id == merchant.pk


class ProductViewSet(viewsets.ModelViewSet):
    queryset = Product.objects.filter(listed=True).select_related("merchant")
    serializer_class = ProductSerializer
    permission_classes = [IsOwningMerchantOrReadOnly]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.request.method not in permissions.SAFE_METHODS:
            return Product.objects.all()  # a merchant may change its unlisted products too
        return queryset

    def perform_create(self, serializer):
        merchant = ProductImportSerializer.merchant_for(self.request.user)
        if merchant is None:
            raise PermissionDenied("Only merchants add products.")
        if Product.objects.filter(merchant=merchant, sku=serializer.validated_data["sku"]).exists():
            raise serializers.ValidationError({"sku": ["You already have a product with this sku."]})
        serializer.save(merchant=merchant)
