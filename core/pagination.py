"""The API's one way of paging a list."""

from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """``limit``/``offset`` on every list of the API, ``{count, next, previous, results}`` in the answer.

    At most 1,000 rows a page: a larger ``limit`` gets 1,000 (a limit no database offset holds was a 500).
    ``core.lists.ListView`` names it as its ``pagination_class``, so the OpenAPI schema documents the parameters
    and the envelope of every list."""

    max_limit = 1000
