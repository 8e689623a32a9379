"""One body for every refusal of the API: ``{"error": {"code", "message", "field"}}``.

``code`` is stable and meant for programs (``invalid``, ``not_found``, ``unauthorized``,
``forbidden``, ``bad_request``, and the 409/429 codes of the operations that have them);
``message`` is for people; ``field`` names the input at fault (``phones[0].number``, ``content.sms``),
or is null. A refusal with several invalid fields lists them all in ``errors``; some refusals
carry more (``warnings``, ``retry_after_seconds``) beside ``error``.
"""

from __future__ import annotations

from typing import Any

from ninja import Schema


class ErrorBody(Schema):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Schema):
    error: ErrorBody


class ErrorsOut(ErrorOut):
    errors: list[ErrorBody]  # every invalid field; ``error`` is the first


def error(code: str, message: str, field: str | None = None, **more: Any) -> dict[str, Any]:
    """A refusal's body."""
    return {"error": {"code": code, "message": message, "field": field}, **more}


STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
