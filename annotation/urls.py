from django.urls import path

from annotation import api, api_peers, api_setup, views, views_peers, views_review, views_setup

urlpatterns = [
    path("projects/<id:pk>/", views.project_dashboard, name="project_detail"),
    path("projects/<id:pk>/annotate/", views.annotate, name="annotate"),
    path("projects/<id:pk>/annotate/<id:item_pk>/", views.annotate_item, name="annotate_item"),
    path("projects/<id:pk>/annotate/<id:item_pk>/draft/", views.draft_save, name="draft_save"),
    path("projects/<id:pk>/annotate/<id:item_pk>/submit/", views.submit, name="annotation_submit"),
    path("projects/<id:pk>/annotate/<id:item_pk>/skip/", views.skip, name="item_skip"),
    path("projects/<id:pk>/review/", views_review.review_queue, name="review_queue"),
    path("projects/<id:pk>/review/<id:annotation_pk>/", views_review.review, name="review"),
    path("projects/<id:pk>/imports/", views_setup.imports, name="imports"),
    path("projects/<id:pk>/imports/<id:batch_pk>/", views_setup.import_detail, name="import_detail"),
    path("projects/<id:pk>/imports/<id:batch_pk>/mapping/", views_peers.import_mapping, name="import_mapping"),
    path("projects/<id:pk>/imports/<id:batch_pk>/cancel/", views_peers.import_cancel, name="import_cancel"),
    path("projects/<id:pk>/rubric/", views_setup.rubric, name="rubric"),
    path("projects/<id:pk>/annotation-settings/", views_setup.annotation_settings, name="annotation_settings"),
    path("projects/<id:pk>/on-hold/", views_setup.on_hold, name="on_hold"),
]

api_urlpatterns = [
    path("projects/<id:pk>/imports/", api.ImportListView.as_view(), name="api_imports"),
    path("projects/<id:pk>/imports/<id:batch_pk>/", api.ImportDetailView.as_view(), name="api_import"),
    path(
        "projects/<id:pk>/imports/<id:batch_pk>/mapping/",
        api_peers.ImportMappingView.as_view(),
        name="api_import_mapping",
    ),
    path(
        "projects/<id:pk>/imports/<id:batch_pk>/cancel/",
        api_peers.ImportCancelView.as_view(),
        name="api_import_cancel",
    ),
    path("projects/<id:pk>/items/", api.ItemListView.as_view(), name="api_items"),
    path("projects/<id:pk>/annotations/", api.AnnotationListView.as_view(), name="api_annotations"),
    path(
        "projects/<id:pk>/annotations/<id:annotation_pk>/review/",
        api.AnnotationReviewView.as_view(),
        name="api_annotation_review",
    ),
    path("projects/<id:pk>/rubric/", api_setup.RubricView.as_view(), name="api_rubric"),
    path(
        "projects/<id:pk>/annotation-settings/",
        api_setup.AnnotationSettingsView.as_view(),
        name="api_annotation_settings",
    ),
]
