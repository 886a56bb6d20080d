"""AWS client settings shared by the handlers: a bounded time per call, so the
function's own timeout (10 s) is never the first thing to give up."""

from botocore.config import Config

BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=1, read_timeout=3)
# Codes that mean "AWS is busy", answered 503 (retry) rather than 500.
THROTTLING_CODES = frozenset({
    "ThrottlingException", "Throttling", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "TooManyRequestsException", "RequestThrottled", "ServiceUnavailable", "InternalServerError",
})
