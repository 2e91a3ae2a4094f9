"""URLs of the moderator clustering pages (included under clusters/ by search.urls)."""

from django.urls import path

from search import views_clusters as views

urlpatterns = [
    path("", views.cluster_list, name="clusters"),
    path("runs/", views.run_list, name="clusters-runs"),
    path("runs/start/", views.rerun, name="clusters-rerun"),
    path("runs/<int:run_id>/", views.cluster_list, name="clusters-run"),
    path("runs/<int:run_id>/current/", views.run_current, name="clusters-run-current"),
    path("runs/<int:run_id>/noise/", views.noise_gallery, name="clusters-noise"),
    path("runs/<int:run_id>/map/", views.cluster_map, name="clusters-run-map"),
    path("runs/<int:run_id>/map.json", views.map_data, name="clusters-map-data"),
    path("runs/<int:run_id>/history/", views.history, name="clusters-run-history"),
    path("map/", views.cluster_map, name="clusters-map"),
    path("history/", views.history, name="clusters-history"),
    path("<int:cluster_id>/", views.cluster_gallery, name="clusters-detail"),
    path("<int:cluster_id>/name/", views.cluster_name, name="clusters-name"),
    path("<int:cluster_id>/approve/", views.cluster_approve, name="clusters-approve"),
    path("<int:cluster_id>/merge/", views.cluster_merge, name="clusters-merge"),
    path("<int:cluster_id>/noise/", views.cluster_noise, name="clusters-cluster-noise"),
    path("photos/<int:photo_id>/", views.photo_detail, name="clusters-photo"),
    path("photos/move/", views.photos_move, name="clusters-move"),
    path("photos/split/", views.photos_split, name="clusters-split"),
    path("photos/noise/", views.photos_noise, name="clusters-photos-noise"),
    path("undo/", views.undo, name="clusters-undo"),
]
