from django.urls import path

from evaluation import api, views

urlpatterns = [
    path("projects/<id:pk>/evaluations/", views.evaluation_list, name="evaluations"),
    path("projects/<id:pk>/evaluations/new/", views.evaluation_new, name="evaluation_new"),
    path("projects/<id:pk>/evaluations/<id:evaluation_pk>/", views.evaluation_detail, name="evaluation"),
    path("projects/<id:pk>/evaluations/<id:evaluation_pk>/finish/", views.evaluation_finish, name="evaluation_finish"),
]

api_urlpatterns = [
    path("projects/<id:pk>/evaluations/", api.EvaluationListCreateView.as_view(), name="api_evaluations"),
    path("projects/<id:pk>/evaluations/<id:evaluation_pk>/", api.EvaluationDetailView.as_view(), name="api_evaluation"),
    path(
        "projects/<id:pk>/evaluations/<id:evaluation_pk>/finish/",
        api.EvaluationFinishView.as_view(),
        name="api_evaluation_finish",
    ),
]
