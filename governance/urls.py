from django.urls import URLPattern, path

from governance import api, views

urlpatterns: list[URLPattern] = [
    path("projects/<id:pk>/adapters/<id:adapter_pk>/dossier/", views.adapter_dossier, name="adapter_dossier"),
    path("dossier-signing-key/", views.signing_key_page, name="dossier_signing_key"),
]

api_urlpatterns: list[URLPattern] = [
    path(
        "projects/<id:pk>/adapters/<id:adapter_pk>/dossier/",
        api.AdapterDossierView.as_view(),
        name="api_adapter_dossier",
    ),
]
