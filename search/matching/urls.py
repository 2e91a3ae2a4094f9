"""URLs of the search pages: search by upload or stored photo, matched listings, duplicates."""

from django.urls import path

from search.matching import views

app_name = "matching"
urlpatterns = [
    path("search/", views.search_upload, name="search"),
    path("search/photo/<int:photo_id>/", views.search_photo, name="search-photo"),
    path("listings/<int:listing_id>/matched/", views.listing_matched, name="listing-matched"),
    path("duplicates/", views.duplicate_listings, name="duplicates"),
]
