"""URLs of the training app (mounted at /training/)."""

from django.urls import path

from training import views

urlpatterns = [
    path("", views.run_list, name="training-runs"),
    path("runs/new/", views.run_create, name="training-run-create"),
    path("runs/<int:run_id>/", views.run_detail, name="training-run"),
    path("runs/<int:run_id>/snapshot.json", views.run_snapshot, name="training-run-snapshot"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="training-run-cancel"),
    path("runs/<int:run_id>/resume/", views.run_resume, name="training-run-resume"),
    path("runs/<int:run_id>/index/", views.run_index, name="training-run-index"),
    path("runs/<int:run_id>/samples/<int:step>.png", views.sample_file, name="training-sample"),
]
