"""URLs of the listing pages: listings, photos, uploads (namespace listings)."""

from django.urls import path

from search.listings import views

app_name = "listings"
urlpatterns = [
    path("", views.home, name="home"),
    path("listings/", views.listing_list, name="list"),
    path("listings/new/", views.listing_create, name="create"),
    path("listings/<int:listing_id>/", views.listing_detail, name="detail"),
    path("listings/<int:listing_id>/upload/", views.listing_upload, name="upload"),
    path("listings/<int:listing_id>/uploads/<int:batch_id>/", views.upload_result, name="upload-result"),
    path("photos/<int:photo_id>/<str:variant>.jpg", views.photo_file, name="photo-file"),
]
