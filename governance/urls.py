from django.urls import URLPattern, path

from governance import api, views

urlpatterns: list[URLPattern] = [
    path("projects/<id:pk>/adapters/<id:adapter_pk>/dossier/", views.adapter_dossier, name="adapter_dossier"),
    path("dossier-signing-key/", views.signing_key_page, name="dossier_signing_key"),
    path("erasure/", views.erasure_list, name="erasures"),
    path("erasure/preview/", views.erasure_preview, name="erasure_preview"),
    path("erasure/erase/", views.erasure_erase, name="erasure_erase"),
    path("erasure/<id:erasure_pk>/", views.erasure_detail, name="erasure_detail"),
    path(
        "projects/<id:pk>/releases/<id:release_pk>/rebuild-without-erased/",
        views.release_rebuild_without_erased,
        name="release_rebuild_without_erased",
    ),
    path("projects/<id:pk>/retention/", views.retention, name="retention"),
]

api_urlpatterns: list[URLPattern] = [
    path(
        "projects/<id:pk>/adapters/<id:adapter_pk>/dossier/",
        api.AdapterDossierView.as_view(),
        name="api_adapter_dossier",
    ),
    path("erasures/", api.ErasureListCreateView.as_view(), name="api_erasures"),
    path("erasures/preview/", api.ErasurePreviewView.as_view(), name="api_erasure_preview"),
    path("erasures/<id:erasure_pk>/", api.ErasureDetailView.as_view(), name="api_erasure"),
    path(
        "projects/<id:pk>/releases/<id:release_pk>/rebuild-without-erased/",
        api.ReleaseRebuildWithoutErasedView.as_view(),
        name="api_release_rebuild_without_erased",
    ),
    path("projects/<id:pk>/retention/", api.RetentionView.as_view(), name="api_retention"),
]
