"""One private cattrs converter for everything the server sends.

It is strict where the global converter is lenient: a number where a string belongs
is an error, not ``str(5)``. Field names are camelCase on the wire, unknown fields are
kept in ``extra``, and every failure becomes a :class:`ResponseFormatError` whose
message names the bad fields as the server spells them, and never quotes a value
(a value may be a token).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError
from cattrs.gen import make_dict_structure_fn, override

from teletracker_async._errors import ResponseFormatError

__all__ = [
    "CallDataAnswer",
    "Envelope",
    "TokenAnswer",
    "decode_json",
    "parse_token_answer",
    "structure",
]

T = TypeVar("T")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _strict_str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_type_name(value)}")
    return value


def _strict_bool(value: object, _: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_type_name(value)}")
    return value


def _strict_float(value: object, _: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {_type_name(value)}")
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return float(value)


def _aware_datetime(value: object, _: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 timestamp, got {_type_name(value)}")
    try:
        # 3.10's fromisoformat does not take a trailing "Z".
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("expected an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError("expected a timestamp with a UTC offset")
    return parsed


Records = list[dict[str, Any]]


def _records(value: object, _: object) -> Records:
    # Call records stay plain dicts (their shape is not documented), but each must
    # at least be an object.
    if not isinstance(value, list):
        raise TypeError(f"expected a list of records, got {_type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise TypeError(f"record {index} is {_type_name(item)}, not an object")
    return value


converter = cattrs.Converter()
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook(bool, _strict_bool)
converter.register_structure_hook(float, _strict_float)
converter.register_structure_hook(datetime, _aware_datetime)
converter.register_structure_hook_func(lambda t: t == Records, _records)


def _register_wire_class(cls: type[T]) -> type[T]:
    """Structure *cls* from camelCase keys, keeping unknown keys in ``extra``."""
    fields = [f for f in attrs.fields(cls) if f.name != "extra"]  # type: ignore[arg-type]
    wire = {f.name: _camel(f.name) for f in fields}
    known = frozenset(wire.values())
    overrides: dict[str, Any] = {
        name: override(rename=key) for name, key in wire.items()
    }
    base = make_dict_structure_fn(
        cls, converter, extra=override(omit=True), **overrides
    )

    def structure(payload: Any, _: object) -> T:
        obj = base(payload, cls)
        extra = {k: v for k, v in payload.items() if k not in known}
        return attrs.evolve(obj, extra=extra)  # type: ignore[misc]

    converter.register_structure_hook(cls, structure)
    cls.__wire_names__ = wire  # type: ignore[attr-defined]
    return cls


def _keys_only(extra: dict[str, Any]) -> str:
    return f"<keys {sorted(extra)!r}>"


@_register_wire_class
@attrs.frozen
class TokenAnswer:
    """The body of a successful login or refresh answer."""

    success: bool
    guid: str
    token: str = attrs.field(repr=False)
    token_expiration: datetime
    token_lifetime: float
    refresh_token: str = attrs.field(repr=False)
    refresh_token_expiration: datetime | None = None
    #: Unknown fields, as sent; ``repr`` names them only (one may echo the form).
    extra: dict[str, Any] = attrs.field(factory=dict, repr=_keys_only)

    @property
    def account_id(self) -> int | None:
        """The account the server says the session is for, when it says so.

        The documentation shows no such field; some answers carry an ``accountId``.
        It is taken only when it is a positive integer (never a bool or a string),
        and stays in ``extra`` as sent: an odd value is ignored, never an error.
        """
        value = self.extra.get("accountId")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        return None


@_register_wire_class
@attrs.frozen
class Envelope:
    """Every answer: ``success`` and, on data endpoints, ``data``."""

    success: bool
    extra: dict[str, Any] = attrs.field(factory=dict)


@_register_wire_class
@attrs.frozen
class CallDataAnswer:
    """The answer of ``GET /reports/call-data``."""

    success: bool
    data: Records
    extra: dict[str, Any] = attrs.field(factory=dict)


def _problems(exc: ClassValidationError, cls: type[Any]) -> list[str]:
    wire: dict[str, str] = getattr(cls, "__wire_names__", {})
    with_notes, without = exc.group_exceptions()
    problems = [
        f"{wire.get(note.name, note.name)}: "
        f"{'missing' if isinstance(sub, KeyError) else sub}"
        for sub, note in with_notes
    ]
    return problems + [f"answer: {sub}" for sub in without]


def structure(payload: Any, cls: type[T], *, what: str, status_code: int) -> T:
    """Structure a decoded JSON object into *cls* or raise ResponseFormatError."""
    if not isinstance(payload, dict):
        raise ResponseFormatError(
            f"The {what} is not a JSON object but {_type_name(payload)}.",
            status_code=status_code,
        )
    try:
        return converter.structure(payload, cls)
    except ClassValidationError as exc:
        problems = tuple(_problems(exc, cls))
        raise ResponseFormatError(
            f"The {what} has bad fields: {'; '.join(problems)}.",
            status_code=status_code,
            problems=problems,
        ) from None


def decode_json(content: bytes, *, what: str, status_code: int) -> Any:
    """Decode a JSON body, or raise ResponseFormatError saying what came instead."""
    try:
        return json.loads(content)
    except RecursionError:
        kind = "JSON nested too deeply to read"
    except (ValueError, UnicodeDecodeError):
        kind = "an empty body" if not content.strip() else "not JSON"
        if content.lstrip()[:1] == b"<":
            kind = "HTML, not JSON"
    raise ResponseFormatError(
        f"The {what} (HTTP {status_code}) is {kind}.", status_code=status_code
    )


def parse_token_answer(content: bytes, *, what: str, status_code: int) -> TokenAnswer:
    """Read a login or refresh answer; the message never quotes a value."""
    payload = decode_json(content, what=what, status_code=status_code)
    if isinstance(payload, dict) and payload.get("success") is False:
        raise ResponseFormatError(
            f"The {what} says success: false on HTTP {status_code}.",
            status_code=status_code,
        )
    answer = structure(payload, TokenAnswer, what=what, status_code=status_code)
    if answer.token_lifetime <= 0:
        raise ResponseFormatError(
            f"The {what} has bad fields: tokenLifetime: must be positive.",
            status_code=status_code,
            problems=("tokenLifetime: must be positive",),
        )
    if not answer.token or not answer.refresh_token:
        raise ResponseFormatError(
            f"The {what} has bad fields: token or refreshToken is empty.",
            status_code=status_code,
            problems=("token/refreshToken: empty",),
        )
    return answer
