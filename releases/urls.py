from django.urls import path

from releases import api, views

urlpatterns = [
    path("projects/<int:pk>/releases/", views.release_list, name="releases"),
    path("projects/<int:pk>/releases/new/", views.release_new, name="release_new"),
    path("projects/<int:pk>/releases/diff/", views.release_diff, name="release_diff"),
    path("projects/<int:pk>/releases/<int:release_pk>/", views.release_detail, name="release_detail"),
    path("projects/<int:pk>/releases/<int:release_pk>/delete/", views.release_delete, name="release_delete"),
    path(
        "projects/<int:pk>/releases/<int:release_pk>/files/<int:file_pk>/",
        views.release_file_download,
        name="release_file",
    ),
]

api_urlpatterns = [
    path("projects/<int:pk>/releases/", api.ReleaseListCreateView.as_view(), name="api_releases"),
    path("projects/<int:pk>/releases/diff/", api.ReleaseDiffView.as_view(), name="api_release_diff"),
    path("projects/<int:pk>/releases/<int:release_pk>/", api.ReleaseDetailView.as_view(), name="api_release"),
    path(
        "projects/<int:pk>/releases/<int:release_pk>/datasheet/",
        api.ReleaseDatasheetView.as_view(),
        name="api_release_datasheet",
    ),
    path(
        "projects/<int:pk>/releases/<int:release_pk>/files/<int:file_pk>/",
        api.ReleaseFileView.as_view(),
        name="api_release_file",
    ),
]
