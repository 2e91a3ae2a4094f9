"""URLs of the JSON API."""

from collections.abc import Callable

from django.http.response import HttpResponseBase
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.permissions import AllowAny

from search.matching import api


def _docs_page() -> Callable[..., HttpResponseBase]:
    """Swagger UI (local static files): a page for anyone; the schema it loads has its own access rules."""
    view = SpectacularSwaggerView.as_view(
        url_name="api:schema", authentication_classes=[], permission_classes=[AllowAny]
    )
    # DRF views skip Django's CSRF check and leave it to session auth, which this page does without.
    view.csrf_exempt = False
    return view


app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", _docs_page(), name="docs"),
    path("token/", obtain_auth_token, name="token"),
    path("listings/", api.ListingListApi.as_view(), name="listings"),
    path("listings/<int:listing_id>/", api.ListingDetailApi.as_view(), name="listing"),
    path("listings/<int:listing_id>/photos/", api.ListingPhotosApi.as_view(), name="listing-photos"),
    path("jobs/<int:job_id>/", api.JobApi.as_view(), name="job"),
    path("search/", api.SearchApi.as_view(), name="search"),
]
