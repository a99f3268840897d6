from django.urls import path

from evaluation import api, views

urlpatterns = [
    # Generation runs
    path("projects/<id:pk>/generation/", views.run_list, name="generation"),
    path("projects/<id:pk>/generation/new/", views.run_new, name="generation_new"),
    path("projects/<id:pk>/generation/<id:run_pk>/", views.run_detail, name="generation_run"),
    path("projects/<id:pk>/generation/<id:run_pk>/cancel/", views.run_cancel, name="generation_run_cancel"),
]

api_urlpatterns = [
    # Generation runs
    path("projects/<id:pk>/generation-runs/", api.GenerationRunListCreateView.as_view(), name="api_generation_runs"),
    path(
        "projects/<id:pk>/generation-runs/<id:run_pk>/",
        api.GenerationRunDetailView.as_view(),
        name="api_generation_run",
    ),
    path(
        "projects/<id:pk>/generation-runs/<id:run_pk>/candidates/",
        api.CandidateListView.as_view(),
        name="api_generation_run_candidates",
    ),
    path(
        "projects/<id:pk>/generation-runs/<id:run_pk>/cancel/",
        api.GenerationRunCancelView.as_view(),
        name="api_generation_run_cancel",
    ),
]
