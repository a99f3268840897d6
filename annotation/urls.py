from django.urls import path

from annotation import api, views

urlpatterns = [
    path("projects/<int:pk>/", views.project_dashboard, name="project_detail"),
    path("projects/<int:pk>/annotate/", views.annotate, name="annotate"),
    path("projects/<int:pk>/annotate/<int:item_pk>/", views.annotate_item, name="annotate_item"),
    path("projects/<int:pk>/annotate/<int:item_pk>/draft/", views.draft_save, name="draft_save"),
    path("projects/<int:pk>/annotate/<int:item_pk>/submit/", views.submit, name="annotation_submit"),
    path("projects/<int:pk>/annotate/<int:item_pk>/skip/", views.skip, name="item_skip"),
    path("projects/<int:pk>/review/", views.review_queue, name="review_queue"),
    path("projects/<int:pk>/review/<int:annotation_pk>/", views.review, name="review"),
    path("projects/<int:pk>/imports/", views.imports, name="imports"),
    path("projects/<int:pk>/imports/<int:batch_pk>/", views.import_detail, name="import_detail"),
    path("projects/<int:pk>/rubric/", views.rubric, name="rubric"),
    path("projects/<int:pk>/annotation-settings/", views.annotation_settings, name="annotation_settings"),
    path("projects/<int:pk>/on-hold/", views.on_hold, name="on_hold"),
]

api_urlpatterns = [
    path("projects/<int:pk>/imports/", api.ImportListView.as_view(), name="api_imports"),
    path("projects/<int:pk>/imports/<int:batch_pk>/", api.ImportDetailView.as_view(), name="api_import"),
    path("projects/<int:pk>/items/", api.ItemListView.as_view(), name="api_items"),
    path("projects/<int:pk>/annotations/", api.AnnotationListView.as_view(), name="api_annotations"),
    path(
        "projects/<int:pk>/annotations/<int:annotation_pk>/review/",
        api.AnnotationReviewView.as_view(),
        name="api_annotation_review",
    ),
]
