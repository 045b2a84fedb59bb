"""boto3 clients for the AWS targets, with botocore's own retry handling instead of hand-written backoff.

``adaptive`` retries throttling and transient errors with exponential backoff and jitter, and also slows
this client down (client-side rate limiting) while the service keeps throttling it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from botocore.config import Config

# boto3/botocore are imported by the functions: the targets' settings import this module for `RetryMode`,
# and a code location that runs everything locally should not pay for importing boto3.
RetryMode = Literal["standard", "adaptive"]

# Error codes worth another try once botocore's own retries are used up (the service is busy, not wrong).
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServerException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)


def retry_config(mode: RetryMode = "adaptive", max_attempts: int = 10) -> Config:
    from botocore.config import Config

    return Config(retries={"mode": mode, "max_attempts": max_attempts})


def aws_client(
    service: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    retry_mode: RetryMode = "adaptive",
    max_attempts: int = 10,
) -> Any:
    """A boto3 client whose calls retry throttling and transient errors (botocore's retry modes)."""
    import boto3

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        config=retry_config(retry_mode, max_attempts),
    )


def is_transient(exc: BaseException) -> bool:
    """Throttling, a 5xx or a network error: polling may try again later; anything else is final."""
    import botocore.exceptions

    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error.get("Code") in TRANSIENT_CODES or int(status) >= 500
    return isinstance(exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError)
