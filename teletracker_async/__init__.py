"""teletracker_async: the async Python SDK for the Teletracker REST API.

One :class:`TeletrackerAuth` shares one bearer session between any number of
coroutines: one login, one refresh per expiry, and no request lost to an expired token.
"""

# First: httpx is imported without its command line (see the module).
import teletracker_async._lean_httpx  # noqa: F401
from teletracker_async._call.retry import Retry
from teletracker_async._client import TeletrackerClient
from teletracker_async._config import DEFAULT_LIMITS, DEFAULT_TIMEOUT
from teletracker_async._errors import (
    AccountMismatchError,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    OriginMismatchError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TeletrackerError,
    TokenCodecError,
    TokenStoreError,
)
from teletracker_async._models import AuthSession
from teletracker_async._reports import CallDataStream, CallDataWindow
from teletracker_async._session.flow import TeletrackerAuth
from teletracker_async._session.schemes import IntegratorAuth, TeletrackerBasicAuth

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AccountMismatchError",
    "AuthSession",
    "AuthenticationError",
    "BadRequestError",
    "CallDataStream",
    "CallDataWindow",
    "IntegratorAuth",
    "NotFoundError",
    "OriginMismatchError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseFormatError",
    "Retry",
    "ServerError",
    "TeletrackerAuth",
    "TeletrackerBasicAuth",
    "TeletrackerClient",
    "TeletrackerError",
    "TokenCodecError",
    "TokenStoreError",
]


def __getattr__(name: str) -> str:
    # Read lazily so that importing the package does not pay for metadata lookup.
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415

        return version("teletracker-async")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
