"""URLs of the JSON API."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.authtoken.views import obtain_auth_token

from search.matching import api

app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("token/", obtain_auth_token, name="token"),
    path("listings/", api.ListingListApi.as_view(), name="listings"),
    path("listings/<int:listing_id>/", api.ListingDetailApi.as_view(), name="listing"),
    path("listings/<int:listing_id>/photos/", api.ListingPhotosApi.as_view(), name="listing-photos"),
    path("jobs/<int:job_id>/", api.JobApi.as_view(), name="job"),
    path("search/", api.SearchApi.as_view(), name="search"),
]
