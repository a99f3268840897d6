from django.urls import path

from releases import api, views

urlpatterns = [
    path("projects/<id:pk>/releases/", views.release_list, name="releases"),
    path("projects/<id:pk>/releases/new/", views.release_new, name="release_new"),
    path("projects/<id:pk>/releases/diff/", views.release_diff, name="release_diff"),
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
