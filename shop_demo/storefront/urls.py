from django.urls import path

from shop_demo.storefront import views

app_name = "storefront"

urlpatterns = [
    path("", views.home, name="home"),
    path("product/<int:pk>/", views.product, name="product"),
]
