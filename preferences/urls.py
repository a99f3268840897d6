from django.urls import path

from preferences import api, views

urlpatterns = [
    path("projects/<int:pk>/compare/", views.compare, name="compare"),
    path("projects/<int:pk>/compare/<int:item_pk>/", views.compare_item, name="compare_item"),
    path("projects/<int:pk>/compare/<int:item_pk>/draft/", views.compare_draft, name="compare_draft"),
    path("projects/<int:pk>/compare/<int:item_pk>/submit/", views.compare_submit, name="compare_submit"),
    path("projects/<int:pk>/compare/<int:item_pk>/skip/", views.compare_skip, name="compare_skip"),
    path("projects/<int:pk>/adjudication/", views.adjudications, name="adjudications"),
    path("projects/<int:pk>/adjudication/<int:adjudication_pk>/", views.adjudicate, name="adjudicate"),
    path("projects/<int:pk>/quality/", views.quality, name="preference_quality"),
    path("projects/<int:pk>/quality/refresh/", views.agreement_refresh, name="agreement_refresh"),
    path(
        "projects/<int:pk>/quality/annotators/<int:user_pk>/exclude/",
        views.annotator_exclude,
        name="annotator_exclude",
    ),
    path("projects/<int:pk>/comparison-settings/", views.preference_settings, name="preference_settings"),
]

api_urlpatterns = [
    path("projects/<int:pk>/comparisons/", api.ComparisonsCreateView.as_view(), name="api_comparisons"),
    path("projects/<int:pk>/comparisons/next/", api.NextComparisonView.as_view(), name="api_comparison_next"),
    path(
        "projects/<int:pk>/comparisons/<int:item_pk>/judgements/",
        api.JudgementSubmitView.as_view(),
        name="api_judgement_submit",
    ),
    path("projects/<int:pk>/judgements/", api.JudgementListView.as_view(), name="api_judgements"),
    path("projects/<int:pk>/agreement/", api.AgreementView.as_view(), name="api_agreement"),
]
