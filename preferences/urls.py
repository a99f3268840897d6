from django.urls import path

from preferences import api, api_agreement, api_comparisons, api_setup, views

urlpatterns = [
    path("projects/<id:pk>/compare/", views.compare, name="compare"),
    path("projects/<id:pk>/compare/<id:item_pk>/", views.compare_item, name="compare_item"),
    path("projects/<id:pk>/compare/<id:item_pk>/draft/", views.compare_draft, name="compare_draft"),
    path("projects/<id:pk>/compare/<id:item_pk>/submit/", views.compare_submit, name="compare_submit"),
    path("projects/<id:pk>/compare/<id:item_pk>/skip/", views.compare_skip, name="compare_skip"),
    path("projects/<id:pk>/adjudication/", views.adjudications, name="adjudications"),
    path("projects/<id:pk>/adjudication/<id:adjudication_pk>/", views.adjudicate, name="adjudicate"),
    path("projects/<id:pk>/quality/", views.quality, name="preference_quality"),
    path("projects/<id:pk>/quality/refresh/", views.agreement_refresh, name="agreement_refresh"),
    path(
        "projects/<id:pk>/quality/annotators/<id:user_pk>/exclude/",
        views.annotator_exclude,
        name="annotator_exclude",
    ),
    path("projects/<id:pk>/comparison-settings/", views.preference_settings, name="preference_settings"),
]

api_urlpatterns = [
    path("projects/<id:pk>/comparisons/", api_comparisons.ComparisonsCreateView.as_view(), name="api_comparisons"),
    path("projects/<id:pk>/comparisons/next/", api.NextComparisonView.as_view(), name="api_comparison_next"),
    path(
        "projects/<id:pk>/comparisons/<id:item_pk>/judgements/",
        api.JudgementSubmitView.as_view(),
        name="api_judgement_submit",
    ),
    path(
        "projects/<id:pk>/comparisons/<id:item_pk>/judgements/and-next/",
        api.JudgementSubmitAndNextView.as_view(),
        name="api_judgement_submit_and_next",
    ),
    path("projects/<id:pk>/judgements/", api.JudgementListView.as_view(), name="api_judgements"),
    path("projects/<id:pk>/agreement/", api_agreement.AgreementView.as_view(), name="api_agreement"),
    path(
        "projects/<id:pk>/comparison-settings/",
        api_setup.ComparisonSettingsView.as_view(),
        name="api_comparison_settings",
    ),
    path(
        "projects/<id:pk>/agreement/recompute/",
        api_agreement.AgreementRecomputeView.as_view(),
        name="api_agreement_recompute",
    ),
]
