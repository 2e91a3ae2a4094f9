"""Top-level URLs."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from flatsite.views import LogoutPage

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", LogoutPage.as_view(), name="logout"),
    path("django-admin/", admin.site.urls),
    path("api/", include("search.matching.api_urls")),
    path("training/", include("training.urls")),
    path("clusters/", include("search.clusters.urls")),
    path("operations/", include("search.ops.urls")),
    path("jobs/", include("flatsite.jobs.urls")),
    path("", include("search.matching.urls")),
    path("", include("search.listings.urls")),
]

# Styled pages for people, the API's JSON error shape under /api/ (flatsite/errors.py).
handler400 = "flatsite.errors.bad_request"
handler403 = "flatsite.errors.permission_denied"
handler404 = "flatsite.errors.page_not_found"
handler500 = "flatsite.errors.server_error"
