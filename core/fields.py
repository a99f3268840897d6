"""Serializer fields of the API that read JSON as its schema says."""

from typing import Any

from rest_framework import serializers


class Text(serializers.CharField):
    """A JSON string, and only a string: DRF's ``CharField`` takes ``0`` as ``"0"``, where the schema says text."""

    default_error_messages = {"invalid": "Not a string: send text in quotes."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))
