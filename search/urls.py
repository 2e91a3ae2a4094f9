"""URLs of the search app's pages."""

from django.urls import include, path

from search import views, views_ops, views_search

urlpatterns = [
    path("", views.home, name="search-home"),
    path("listings/", views.listing_list, name="search-listings"),
    path("listings/new/", views.listing_create, name="search-listing-create"),
    path("listings/<int:listing_id>/", views.listing_detail, name="search-listing"),
    path("listings/<int:listing_id>/upload/", views.listing_upload, name="search-listing-upload"),
    path(
        "listings/<int:listing_id>/uploads/<int:batch_id>/", views.upload_result, name="search-upload-result"
    ),
    path("listings/<int:listing_id>/matched/", views_search.listing_matched, name="search-listing-matched"),
    path("jobs/", views.job_list, name="search-jobs"),
    path("jobs/<int:job_id>/", views.job_detail, name="search-job"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="search-job-cancel"),
    path("search/", views_search.search_upload, name="search-search"),
    path("search/photo/<int:photo_id>/", views_search.search_photo, name="search-search-photo"),
    path("operations/", views_ops.operations, name="search-operations"),
    path("operations/index-live/", views_ops.index_live, name="search-index-live"),
    path("operations/index-evaluate/", views_ops.index_evaluate, name="search-index-evaluate"),
    path("operations/search-encoder/", views_ops.search_encoder, name="search-encoder"),
    path("duplicates/", views_search.duplicate_listings, name="search-duplicates"),
    path("photos/<int:photo_id>/<str:variant>.jpg", views.photo_file, name="search-photo-file"),
    path("clusters/", include("search.urls_clusters")),
]
