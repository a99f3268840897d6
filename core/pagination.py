"""The API's one way of paging a list."""

from typing import Any

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.views import APIView

from core.filters import PAGING_MINIMUM


class Pagination(LimitOffsetPagination):
    """``limit``/``offset`` on every list of the API, ``{count, next, previous, results}`` in the answer.

    At most 1,000 rows a page: a larger ``limit`` gets 1,000 (a limit no database offset holds was a 500), and an
    ``offset`` past the end an empty page. A ``limit`` below 1 or an ``offset`` below 0 is a 400
    (``core.filters``), as the schema says.
    ``core.lists.ListView`` names it as its ``pagination_class``, so the OpenAPI schema documents the parameters
    and the envelope of every list."""

    max_limit = 1000

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        """The parameters with the range ``core.filters`` holds them to (a value outside it is a 400)."""
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = PAGING_MINIMUM[parameter["name"]]
        return parameters
