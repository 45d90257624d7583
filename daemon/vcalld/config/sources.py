"""Hands an already-parsed TOML document to pydantic-settings as its lowest-priority source."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

_document: ContextVar[Mapping[str, Any] | None] = ContextVar("vcalld_toml_document", default=None)


@contextmanager
def toml_document(document: Mapping[str, Any]) -> Iterator[None]:
    """Make `document` the file layer for settings built inside the block.

    The loader parses the file itself (it needs the text for line numbers), so pydantic-settings
    must not read it a second time.
    """
    token = _document.set(document)
    try:
        yield
    finally:
        _document.reset(token)


class TomlDocumentSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_document.get() or {})
