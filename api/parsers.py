"""JSON bodies whose strings every database can store."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StrictJSONParser(JSONParser):
    """JSON, refusing NUL characters and unpaired surrogates (PostgreSQL stores neither): a 400 that says
    so, rather than a failure deep in a write."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        text = json.dumps(data, ensure_ascii=False)
        if "\x00" in text:
            raise ParseError("JSON parse error - strings must not contain NUL (\\u0000) characters.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ParseError(
                "JSON parse error - a string holds an unpaired surrogate (invalid Unicode)."
            ) from None
        return data
