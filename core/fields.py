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


class FormId(serializers.IntegerField):
    """An optional id sent in a multipart form, where no value can be null: an empty field, or the word ``null``
    that a browser's ``FormData.append(name, null)`` and most HTTP clients send for one, means none."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("default", None)
        super().__init__(**kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if isinstance(data, str) and data.strip() in ("", "null"):
            return True, None
        return super().validate_empty_values(data)
