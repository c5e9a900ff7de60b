"""The private converter: strict types, camelCase, unknown keys kept, clear errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from teletracker_async import ResponseFormatError
from teletracker_async._converter import decode_json, parse_token_answer

GOOD: dict[str, Any] = {
    "success": True,
    "guid": "g",
    "token": "t-SECRET",
    "tokenExpiration": "2018-04-01T21:39:12Z",
    "tokenLifetime": 3600,
    "refreshToken": "r-SECRET",
    "refreshTokenExpiration": "2018-04-30T21:39:12+02:00",
    "accountId": 5,
    "somethingNew": {"nested": [1]},
}


def parse(**changes: Any) -> Any:
    payload = {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}
    return parse_token_answer(
        json.dumps(payload).encode(), what="login answer", status_code=200
    )


def test_good_answer_with_zulu_time_and_unknown_fields() -> None:
    """'Z' timestamps parse on every Python; unknown fields land in extra."""
    answer = parse()
    assert answer.token_expiration == datetime(
        2018, 4, 1, 21, 39, 12, tzinfo=timezone.utc
    )
    assert answer.refresh_token_expiration is not None
    assert answer.refresh_token_expiration.utcoffset() == timedelta(hours=2)
    assert answer.token_lifetime == 3600.0
    assert answer.extra == {"accountId": 5, "somethingNew": {"nested": [1]}}


def test_refresh_token_expiration_is_optional() -> None:
    """An answer without refreshTokenExpiration is still a session."""
    assert parse(refreshTokenExpiration=...).refresh_token_expiration is None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"success": "yes"}, "success: expected true or false, got str"),
        ({"tokenLifetime": True}, "tokenLifetime: expected a number, got bool"),
        ({"tokenLifetime": None}, "tokenLifetime: expected a number, got null"),
        ({"tokenLifetime": 1e400}, "tokenLifetime: expected a finite number"),
        (
            {"tokenExpiration": 17},
            "tokenExpiration: expected an ISO 8601 timestamp, got int",
        ),
        (
            {"tokenExpiration": "tomorrow"},
            "tokenExpiration: expected an ISO 8601 timestamp",
        ),
        ({"tokenExpiration": "2018-04-01T21:39:12"}, "with a UTC offset"),
        ({"guid": ...}, "guid: missing"),
        ({"token": ""}, "token or refreshToken is empty"),
        ({"tokenLifetime": -5}, "tokenLifetime: must be positive"),
    ],
)
def test_bad_fields_are_named_and_values_never_quoted(
    changes: dict[str, Any], problem: str
) -> None:
    """The message names each bad field as the server spells it, without values."""
    with pytest.raises(ResponseFormatError, match=problem) as info:
        parse(**changes)
    assert "SECRET" not in str(info.value)
    assert info.value.status_code == 200


def test_several_problems_are_all_listed() -> None:
    """Every bad field is reported at once, in .problems too."""
    with pytest.raises(ResponseFormatError) as info:
        parse(guid=1, refreshToken=...)
    assert info.value.problems == (
        "guid: expected a string, got int",
        "refreshToken: missing",
    )


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"", "an empty body"),
        (b"  <!doctype html>", "HTML, not JSON"),
        (b"{x", "not JSON"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_decode_json_says_what_came_instead(content: bytes, kind: str) -> None:
    """Non-JSON bodies are described, with the status, never quoted."""
    with pytest.raises(ResponseFormatError, match=kind) as info:
        decode_json(content, what="answer", status_code=502)
    assert "(HTTP 502)" in str(info.value)
