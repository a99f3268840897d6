from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views import defaults

from accounts.urls import api_urlpatterns as accounts_api
from annotation.urls import api_urlpatterns as annotation_api
from enclave import api
from evaluation.urls import api_urlpatterns as evaluation_api
from governance.urls import api_urlpatterns as governance_api
from preferences.urls import api_urlpatterns as preferences_api
from releases.urls import api_urlpatterns as releases_api
from rounds.urls import api_urlpatterns as rounds_api
from training.urls import api_urlpatterns as training_api


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(static("favicon.svg"))


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """An address under /api/ that matches nothing (``/api/v1/projects/abc/``) answers in JSON, like every
    other API error; the pages keep their 404 page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


handler404 = not_found
handler400 = "enclave.api_errors.api_bad_request"
handler500 = "enclave.api_errors.api_server_error"

api_v1 = [
    path("", api.ApiV1IndexView.as_view(), name="api_v1"),
    path("health/", api.HealthView.as_view(), name="api_health"),
    *accounts_api,
    *annotation_api,
    *preferences_api,
    *releases_api,
    *training_api,
    *evaluation_api,
    *rounds_api,
    *governance_api,
]

# The API comes first: most requests are the annotators' API calls, and every include tried before theirs
# costs a failed match (docs/PERFORMANCE.md, annotators' hot path).
urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("", include("accounts.urls")),
    path("", include("annotation.urls")),
    path("", include("preferences.urls")),
    path("", include("releases.urls")),
    path("", include("training.urls")),
    path("", include("evaluation.urls")),
    path("", include("rounds.urls")),
    path("", include("governance.urls")),
    path("api/schema/", api.ApiSchemaView.as_view(), name="api_schema"),
    path("api/docs/", api.ApiDocsView.as_view(url_name="api_schema"), name="api_docs"),
    path("api/", api.ApiIndexView.as_view(), name="api_index"),
    path("django-admin/", admin.site.urls),
    path("favicon.ico", favicon),
]
