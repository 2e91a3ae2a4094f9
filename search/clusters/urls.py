"""URLs of the moderator clustering pages (mounted at /clusters/, namespace clusters)."""

from django.urls import path

from search.clusters import views

app_name = "clusters"
urlpatterns = [
    path("", views.cluster_list, name="list"),
    path("runs/", views.run_list, name="runs"),
    path("runs/start/", views.rerun, name="rerun"),
    path("runs/<int:run_id>/", views.cluster_list, name="run"),
    path("runs/<int:run_id>/current/", views.run_current, name="run-current"),
    path("runs/<int:run_id>/noise/", views.noise_gallery, name="noise"),
    path("runs/<int:run_id>/map/", views.cluster_map, name="run-map"),
    path("runs/<int:run_id>/map.json", views.map_data, name="map-data"),
    path("runs/<int:run_id>/history/", views.history, name="run-history"),
    path("map/", views.cluster_map, name="map"),
    path("history/", views.history, name="history"),
    path("<int:cluster_id>/", views.cluster_gallery, name="detail"),
    path("<int:cluster_id>/name/", views.cluster_name, name="name"),
    path("<int:cluster_id>/approve/", views.cluster_approve, name="approve"),
    path("<int:cluster_id>/merge/", views.cluster_merge, name="merge"),
    path("<int:cluster_id>/noise/", views.cluster_noise, name="cluster-noise"),
    path("photos/<int:photo_id>/", views.photo_detail, name="photo"),
    path("photos/move/", views.photos_move, name="move"),
    path("photos/split/", views.photos_split, name="split"),
    path("photos/noise/", views.photos_noise, name="photos-noise"),
    path("undo/", views.undo, name="undo"),
]
