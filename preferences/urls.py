from django.urls import path

from preferences import views

urlpatterns = [
    path("projects/<int:pk>/compare/", views.compare, name="compare"),
    path("projects/<int:pk>/compare/<int:item_pk>/", views.compare_item, name="compare_item"),
    path("projects/<int:pk>/compare/<int:item_pk>/draft/", views.compare_draft, name="compare_draft"),
    path("projects/<int:pk>/compare/<int:item_pk>/submit/", views.compare_submit, name="compare_submit"),
    path("projects/<int:pk>/compare/<int:item_pk>/skip/", views.compare_skip, name="compare_skip"),
    path("projects/<int:pk>/adjudication/", views.adjudications, name="adjudications"),
    path("projects/<int:pk>/adjudication/<int:adjudication_pk>/", views.adjudicate, name="adjudicate"),
    path("projects/<int:pk>/quality/", views.quality, name="preference_quality"),
]
