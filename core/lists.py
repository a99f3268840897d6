"""The API's list views: one base, ``ListView``, that pages with ``Pagination`` and refuses parameters a list
cannot honour (``StrictFilterBackend``).

A list's ``get_queryset()`` fetches the project through its access helper, so a forbidden project answers 404
before any parameter is read, and ``serializer_class`` writes the rows. A list with filters names its
``filterset_class`` (and ``queryset = Model.objects.none()``, from which the schema reads the filters' types); a
list without takes only paging, and the ``filter_params`` it reads itself. A create beside a list stays a
``post`` method with its own input and output serializers. (A class docstring here would become the description
of every list operation in the schema.)
"""

from typing import Any

from rest_framework.generics import ListAPIView
from rest_framework.pagination import BasePagination

from core.filters import StrictFilterBackend
from core.pagination import Pagination


class ListView(ListAPIView[Any]):
    pagination_class: type[BasePagination] | None = Pagination
    filter_backends = [StrictFilterBackend]
