"""What every rule set of the fake shares: its counters and the answers it builds."""

from __future__ import annotations

import email.parser
import email.policy
import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import attrs

from teletracker_async.testing._wire import FakeRequest, FakeResponse

__all__ = [
    "REFRESH_TOKEN_LIFETIME",
    "TOKEN_LIFETIME",
    "FakeStats",
    "api_seconds",
    "api_stamp",
    "json_answer",
    "multipart",
    "read_form",
    "refusal",
    "refusal_body",
    "token_answer",
]

#: Seconds a bearer token lives unless told otherwise: the API's documented example.
TOKEN_LIFETIME = 3600.0
#: Seconds a refresh token lives unless told otherwise.
REFRESH_TOKEN_LIFETIME = 30 * 86400.0


@attrs.define
class FakeStats:
    """What the fake has seen. Reset with :meth:`FakeTeletracker.reset_stats`."""

    logins: int = 0
    failed_logins: int = 0
    auth_only_checks: int = 0
    refreshes: int = 0
    failed_refreshes: int = 0
    #: Refreshes of a token younger than half its lifetime. The SDK never refreshes
    #: that early on its own, so these betray a second refresh for one expiry.
    premature_refreshes: int = 0
    reuse_attempts: int = 0
    rejected_requests: int = 0
    data_requests: int = 0
    injected_faults: int = 0
    concurrent_logins: int = 0
    max_concurrent_logins: int = 0
    concurrent_refreshes: int = 0
    max_concurrent_refreshes: int = 0


json_answer = FakeResponse.json


def refusal_body(message: str, **more: Any) -> dict[str, Any]:
    """The body of the API's refusals: ``success: false``, a message, *more* fields."""
    return {"success": False, "message": message, **more}


def refusal(status: int, message: str, **more: Any) -> FakeResponse:
    """The API's refusal, on *status*."""
    return json_answer(refusal_body(message, **more), status)


def token_answer(
    *,
    guid: str,
    token: str,
    refresh_token: str,
    token_lifetime: float,
    refresh_token_lifetime: float,
    issued_at: datetime,
    account_id: int | None = None,
) -> FakeResponse:
    """A login or refresh answer (they share one shape), issued at wall time
    *issued_at*; ``accountId`` only when *account_id* is given (the documentation
    shows none)."""
    answer: dict[str, Any] = {
        "success": True,
        "guid": guid,
        "token": token,
        "tokenExpiration": api_stamp(issued_at + timedelta(seconds=token_lifetime)),
        "tokenLifetime": api_seconds(token_lifetime),
        "refreshToken": refresh_token,
        "refreshTokenExpiration": api_stamp(
            issued_at + timedelta(seconds=refresh_token_lifetime)
        ),
    }
    if account_id is not None:
        answer["accountId"] = account_id
    return json_answer(answer)


def api_seconds(value: float) -> int | float:
    """A lifetime as the API writes it: an integer, unless it has a fraction."""
    return int(value) if float(value).is_integer() else value


def api_stamp(moment: datetime) -> str:
    """A timestamp as the API writes it: to the second, with its offset."""
    return moment.replace(microsecond=0).isoformat()


def multipart(ctype: str, body: bytes) -> dict[str, str]:
    """The fields of a ``multipart/form-data`` body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"content-type: " + ctype.encode() + b"\r\n\r\n" + body
    )
    form: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload_bytes = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload_bytes, bytes):
            form[name] = payload_bytes.decode()
    return form


def read_form(request: FakeRequest) -> dict[str, str] | FakeResponse:
    """The request's form (urlencoded, multipart or a JSON object), or a 400."""
    ctype = request.headers.get("content-type", "")
    try:
        if ctype.startswith("application/json"):
            payload = json.loads(request.body or b"{}")
            if not isinstance(payload, dict):
                return refusal(400, "The JSON body must be an object")
            return {k: str(v) for k, v in payload.items() if v is not None}
        if ctype.startswith("multipart/form-data"):
            return multipart(ctype, request.body)
        return dict(parse_qsl(request.body.decode(), keep_blank_values=True))
    except (ValueError, UnicodeDecodeError):
        return refusal(400, "The request body could not be read")
