"""URLs of the training app (mounted at /training/)."""

from django.urls import path

from training import views

app_name = "training"
urlpatterns = [
    path("", views.run_list, name="runs"),
    path("runs/new/", views.run_create, name="run-create"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/snapshot.json", views.run_snapshot, name="run-snapshot"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<int:run_id>/resume/", views.run_resume, name="run-resume"),
    path("runs/<int:run_id>/index/", views.run_index, name="run-index"),
    path("runs/<int:run_id>/samples/<int:step>.png", views.sample_file, name="sample"),
]
