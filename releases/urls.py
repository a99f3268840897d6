from django.urls import path

from releases import api, api_drift, views, views_drift

urlpatterns = [
    path("projects/<id:pk>/releases/", views.release_list, name="releases"),
    path("projects/<id:pk>/releases/new/", views.release_new, name="release_new"),
    path("projects/<id:pk>/releases/diff/", views.release_diff, name="release_diff"),
    path("projects/<id:pk>/releases/drift/", views_drift.drift_page, name="release_drift"),
    path("projects/<id:pk>/releases/drift/refresh-report/", views_drift.drift_refresh_report, name="drift_refresh"),
    path("projects/<id:pk>/releases/drift/settings/", views_drift.drift_settings, name="drift_settings"),
    path(
        "projects/<id:pk>/releases/drift/refresh-eval-set/",
        views_drift.drift_refresh_eval_set,
        name="drift_refresh_eval_set",
    ),
    path("projects/<id:pk>/releases/<id:release_pk>/", views.release_detail, name="release_detail"),
    path("projects/<id:pk>/releases/<id:release_pk>/delete/", views.release_delete, name="release_delete"),
    path(
        "projects/<id:pk>/releases/<id:release_pk>/files/<id:file_pk>/",
        views.release_file_download,
        name="release_file",
    ),
]

api_urlpatterns = [
    path("projects/<id:pk>/releases/", api.ReleaseListCreateView.as_view(), name="api_releases"),
    path("projects/<id:pk>/releases/diff/", api.ReleaseDiffView.as_view(), name="api_release_diff"),
    path("projects/<id:pk>/drift/", api_drift.DriftView.as_view(), name="api_drift"),
    path(
        "projects/<id:pk>/drift/refresh-report/", api_drift.DriftRefreshReportView.as_view(), name="api_drift_refresh"
    ),
    path(
        "projects/<id:pk>/drift/refresh-eval-set/",
        api_drift.DriftRefreshEvalSetView.as_view(),
        name="api_drift_refresh_eval_set",
    ),
    path("projects/<id:pk>/drift/settings/", api_drift.DriftSettingsView.as_view(), name="api_drift_settings"),
    path("projects/<id:pk>/releases/<id:release_pk>/", api.ReleaseDetailView.as_view(), name="api_release"),
    path(
        "projects/<id:pk>/releases/<id:release_pk>/datasheet/",
        api.ReleaseDatasheetView.as_view(),
        name="api_release_datasheet",
    ),
    path(
        "projects/<id:pk>/releases/<id:release_pk>/files/<id:file_pk>/",
        api.ReleaseFileView.as_view(),
        name="api_release_file",
    ),
]
