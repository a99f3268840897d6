from django.urls import path

from rounds import api, views

_ROUND = "projects/<id:pk>/rounds/<id:number>/"

urlpatterns = [
    path("projects/<id:pk>/rounds/", views.round_list, name="rounds"),
    path("projects/<id:pk>/rounds/new/", views.round_new, name="round_new"),
    path(_ROUND, views.round_detail, name="round"),
    path(_ROUND + "release/", views.round_release, name="round_release"),
    path(_ROUND + "end/", views.round_end, name="round_end"),
]

api_urlpatterns = [
    path("projects/<id:pk>/rounds/", api.RoundListCreateView.as_view(), name="api_rounds"),
    path(_ROUND, api.RoundDetailView.as_view(), name="api_round"),
    path(_ROUND + "pairs/", api.RoundPairListView.as_view(), name="api_round_pairs"),
    path(_ROUND + "release/", api.RoundReleaseView.as_view(), name="api_round_release"),
    path(_ROUND + "end/", api.RoundEndView.as_view(), name="api_round_end"),
]
