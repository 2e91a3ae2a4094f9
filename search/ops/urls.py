"""URLs of the Operations page and its actions (mounted at /operations/, namespace ops)."""

from django.urls import path

from search.ops import views

app_name = "ops"
urlpatterns = [
    path("", views.operations, name="page"),
    path("index-live/", views.index_live, name="index-live"),
    path("index-evaluate/", views.index_evaluate, name="index-evaluate"),
    path("search-encoder/", views.search_encoder, name="search-encoder"),
]
