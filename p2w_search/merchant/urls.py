"""The merchant pages: ``path("merchant/", include("p2w_search.merchant.urls"))``.

They need ``P2W_SEARCH["IMPORT_SERIALIZER"]`` (system check p2w_search.E013). A shop with
its own login page sets ``LOGIN_URL``; otherwise the pages' own ``login/`` is used.
"""

from django.contrib.auth.decorators import login_not_required
from django.urls import path, reverse_lazy

from p2w_search.merchant import views

app_name = "p2w_merchant"

urlpatterns = [
    path("", views.home, name="home"),
    path("upload/", views.upload, name="upload"),
    path("upload/check/", views.upload_check, name="upload-check"),
    path("template.csv", views.template, name="template"),
    path("imports/", views.imports, name="imports"),
    path("imports/<int:pk>/", views.job, name="import"),
    path("imports/<int:pk>/progress/", views.job_progress, name="import-progress"),
    path("imports/<int:pk>/files/<str:name>/", views.job_file, name="import-file"),
    path("embed-again/", views.embed_again, name="embed-again"),
    path("act-for/", views.act_for, name="act-for"),
    path("login/", views.LoginView.as_view(template_name="p2w_search/merchant/login.html",
                                           next_page=reverse_lazy("p2w_merchant:home"),
                                           redirect_authenticated_user=True), name="login"),
    path("logout/", views.LogoutView.as_view(next_page=reverse_lazy("p2w_merchant:login")), name="logout"),
]

# Each page checks the login itself and sends to login_url(); under LoginRequiredMiddleware they went to LOGIN_URL
# instead (a page the shop may not have), and the login page itself needed a login.
for pattern in urlpatterns:
    login_not_required(pattern.callback)
