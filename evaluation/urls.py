from django.urls import path

from evaluation import (
    api,
    api_deployment,
    api_evaluation,
    api_scoring,
    views,
    views_deployment,
    views_evaluation,
    views_scoring,
)

_TARGET = "projects/<id:pk>/deployments/<slug:name>/"
_API_TARGET = "projects/<id:pk>/deployment-targets/<slug:name>/"
_API_REQUEST = _API_TARGET + "requests/<id:request_pk>/"

urlpatterns = [
    # Generation runs
    path("projects/<id:pk>/generation/", views.run_list, name="generation"),
    path("projects/<id:pk>/generation/new/", views.run_new, name="generation_new"),
    path("projects/<id:pk>/generation/<id:run_pk>/", views.run_detail, name="generation_run"),
    path("projects/<id:pk>/generation/<id:run_pk>/cancel/", views.run_cancel, name="generation_run_cancel"),
    # Scoring runs
    path("projects/<id:pk>/scoring/", views_scoring.scoring_list, name="scoring"),
    path("projects/<id:pk>/scoring/new/", views_scoring.scoring_new, name="scoring_new"),
    path("projects/<id:pk>/scoring/<id:scoring_pk>/", views_scoring.scoring_run_detail, name="scoring_run"),
    path(
        "projects/<id:pk>/scoring/<id:scoring_pk>/cancel/", views_scoring.scoring_run_cancel, name="scoring_run_cancel"
    ),
    # --- Deployment targets ---
    path("projects/<id:pk>/deployments/", views_deployment.target_list, name="deployments"),
    path("projects/<id:pk>/deployments/new/", views_deployment.target_new, name="deployment_new"),
    path(_TARGET, views_deployment.target_detail, name="deployment_target"),
    path(_TARGET + "edit/", views_deployment.target_edit, name="deployment_target_edit"),
    path(_TARGET + "promote/", views_deployment.target_request_promotion, name="deployment_promote"),
    path(_TARGET + "rollback/", views_deployment.target_request_rollback, name="deployment_rollback"),
    path(_TARGET + "requests/<id:request_pk>/approve/", views_deployment.request_approve, name="deployment_approve"),
    path(_TARGET + "requests/<id:request_pk>/refuse/", views_deployment.request_refuse, name="deployment_refuse"),
    path(_TARGET + "requests/<id:request_pk>/withdraw/", views_deployment.request_withdraw, name="deployment_withdraw"),
    path(
        "projects/<id:pk>/adapters/<id:adapter_pk>/deployments/",
        views_deployment.adapter_deployments,
        name="adapter_deployments",
    ),
    path("projects/<id:pk>/evaluations/", views_evaluation.evaluation_list, name="evaluations"),
    path("projects/<id:pk>/evaluations/new/", views_evaluation.evaluation_new, name="evaluation_new"),
    path("projects/<id:pk>/evaluations/<id:evaluation_pk>/", views_evaluation.evaluation_detail, name="evaluation"),
    path(
        "projects/<id:pk>/evaluations/<id:evaluation_pk>/finish/",
        views_evaluation.evaluation_finish,
        name="evaluation_finish",
    ),
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
    # Scoring runs
    path("projects/<id:pk>/scoring-runs/", api_scoring.ScoringRunListCreateView.as_view(), name="api_scoring_runs"),
    path(
        "projects/<id:pk>/scoring-runs/<id:scoring_pk>/",
        api_scoring.ScoringRunDetailView.as_view(),
        name="api_scoring_run",
    ),
    path(
        "projects/<id:pk>/scoring-runs/<id:scoring_pk>/cancel/",
        api_scoring.ScoringRunCancelView.as_view(),
        name="api_scoring_run_cancel",
    ),
    # --- Deployment targets ---
    path(
        "projects/<id:pk>/deployment-targets/",
        api_deployment.TargetListCreateView.as_view(),
        name="api_deployment_targets",
    ),
    path(_API_TARGET, api_deployment.TargetDetailView.as_view(), name="api_deployment_target"),
    path(_API_TARGET + "current/", api_deployment.TargetCurrentView.as_view(), name="api_deployment_current"),
    path(_API_TARGET + "history/", api_deployment.TargetHistoryView.as_view(), name="api_deployment_history"),
    path(_API_TARGET + "requests/", api_deployment.RequestListCreateView.as_view(), name="api_deployment_requests"),
    path(_API_REQUEST, api_deployment.RequestDetailView.as_view(), name="api_deployment_request"),
    path(_API_REQUEST + "approve/", api_deployment.RequestApproveView.as_view(), name="api_deployment_approve"),
    path(_API_REQUEST + "refuse/", api_deployment.RequestRefuseView.as_view(), name="api_deployment_refuse"),
    path(_API_REQUEST + "withdraw/", api_deployment.RequestWithdrawView.as_view(), name="api_deployment_withdraw"),
    path("projects/<id:pk>/evaluations/", api_evaluation.EvaluationListCreateView.as_view(), name="api_evaluations"),
    path(
        "projects/<id:pk>/evaluations/<id:evaluation_pk>/",
        api_evaluation.EvaluationDetailView.as_view(),
        name="api_evaluation",
    ),
    path(
        "projects/<id:pk>/evaluations/<id:evaluation_pk>/finish/",
        api_evaluation.EvaluationFinishView.as_view(),
        name="api_evaluation_finish",
    ),
]
