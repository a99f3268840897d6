from django.urls import path

from training import api, api_artifacts, api_serving, views, views_serving

urlpatterns = [
    path("projects/<id:pk>/training/", views.job_list, name="training"),
    path("projects/<id:pk>/training/new/", views.job_new, name="training_new"),
    path("projects/<id:pk>/training/<id:job_pk>/", views.job_detail, name="training_job"),
    path("projects/<id:pk>/training/<id:job_pk>/cancel/", views.job_cancel, name="training_job_cancel"),
    path("projects/<id:pk>/training/<id:job_pk>/rerun/", views.job_rerun, name="training_job_rerun"),
    path("projects/<id:pk>/training/<id:job_pk>/mlflow/", views.job_mlflow_resend, name="training_job_mlflow_resend"),
    path("projects/<id:pk>/adapters/<id:adapter_pk>/", views.adapter_detail, name="adapter"),
    path("projects/<id:pk>/adapters/<id:adapter_pk>/lineage.json", views.adapter_lineage, name="adapter_lineage"),
    path("projects/<id:pk>/adapters/<id:adapter_pk>/files/<int:index>/", views.adapter_file, name="adapter_file"),
    path(
        "projects/<id:pk>/adapters/<id:adapter_pk>/merged/", views_serving.merged_request, name="adapter_merged_request"
    ),
    path(
        "projects/<id:pk>/adapters/<id:adapter_pk>/merged/files/<int:index>/",
        views_serving.merged_file,
        name="adapter_merged_file",
    ),
    path("projects/<id:pk>/reward-models/<id:reward_model_pk>/", views.reward_model_detail, name="reward_model"),
    path(
        "projects/<id:pk>/reward-models/<id:reward_model_pk>/lineage.json",
        views.reward_model_lineage,
        name="reward_model_lineage",
    ),
    path(
        "projects/<id:pk>/reward-models/<id:reward_model_pk>/files/<int:index>/",
        views.reward_model_file,
        name="reward_model_file",
    ),
    path("models/", views.base_models, name="base_models"),
    path("models/<id:model_pk>/", views.base_model_detail, name="base_model"),
    path("models/<id:model_pk>/edit/", views.base_model_edit, name="base_model_edit"),
    path("models/<id:model_pk>/delete/", views.base_model_delete, name="base_model_delete"),
]

api_urlpatterns = [
    path("base-models/", api.BaseModelListCreateView.as_view(), name="api_base_models"),
    path("base-models/<id:model_pk>/", api.BaseModelDetailView.as_view(), name="api_base_model"),
    path("projects/<id:pk>/training/jobs/", api.JobListCreateView.as_view(), name="api_training_jobs"),
    path("projects/<id:pk>/training/jobs/<id:job_pk>/", api.JobDetailView.as_view(), name="api_training_job"),
    path(
        "projects/<id:pk>/training/jobs/<id:job_pk>/metrics/",
        api.JobMetricsView.as_view(),
        name="api_training_job_metrics",
    ),
    path(
        "projects/<id:pk>/training/jobs/<id:job_pk>/cancel/",
        api.JobCancelView.as_view(),
        name="api_training_job_cancel",
    ),
    path(
        "projects/<id:pk>/training/jobs/<id:job_pk>/rerun/", api.JobRerunView.as_view(), name="api_training_job_rerun"
    ),
    path(
        "projects/<id:pk>/training/jobs/<id:job_pk>/mlflow/",
        api.JobMlflowResendView.as_view(),
        name="api_training_job_mlflow_resend",
    ),
    path("projects/<id:pk>/adapters/", api_artifacts.AdapterListView.as_view(), name="api_adapters"),
    path("projects/<id:pk>/adapters/<id:adapter_pk>/", api_artifacts.AdapterDetailView.as_view(), name="api_adapter"),
    path(
        "projects/<id:pk>/adapters/<id:adapter_pk>/files/",
        api_artifacts.AdapterFileListView.as_view(),
        name="api_adapter_files",
    ),
    path(
        "projects/<id:pk>/adapters/<id:adapter_pk>/files/<int:index>/",
        api_artifacts.AdapterFileView.as_view(),
        name="api_adapter_file",
    ),
    path("projects/<id:pk>/reward-models/", api_artifacts.RewardModelListView.as_view(), name="api_reward_models"),
    path(
        "projects/<id:pk>/reward-models/<id:reward_model_pk>/",
        api_artifacts.RewardModelDetailView.as_view(),
        name="api_reward_model",
    ),
    path(
        "projects/<id:pk>/adapters/<id:adapter_pk>/lineage/",
        api_artifacts.AdapterLineageView.as_view(),
        name="api_adapter_lineage",
    ),
    path(
        "projects/<id:pk>/adapters/<id:adapter_pk>/serving/",
        api_serving.AdapterServingView.as_view(),
        name="api_adapter_serving",
    ),
    path(
        "projects/<id:pk>/adapters/<id:adapter_pk>/merged/",
        api_serving.AdapterMergedView.as_view(),
        name="api_adapter_merged",
    ),
    path(
        "projects/<id:pk>/adapters/<id:adapter_pk>/merged/files/<int:index>/",
        api_serving.AdapterMergedFileView.as_view(),
        name="api_adapter_merged_file",
    ),
]
