"""A Lambda context object for invoking handlers in tests."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass
class FakeLambdaContext:
    """What Powertools and our handlers read from Lambda's context object."""

    timeout_s: float = 60.0
    function_name: str = "ingest"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:ap-south-1:123456789012:function:ingest"
    log_group_name: str = "/aws/lambda/ingest"
    log_stream_name: str = "local"
    function_version: str = "$LATEST"
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))
