"""The real read API handler, with a barrier between "event received" and "route runs".

A request carrying `X-Probe-Barrier: <directory>` and `X-Probe-Parties: <n>` waits there until
n such requests have arrived. Powertools keeps the current event on the resolver class: if two
requests ever shared one handler module, each would then answer the other's event.
"""

from __future__ import annotations

from typing import Any

import handlers.api as api
from tests.support.lambda_probe import barrier


def _meet(app: Any, next_middleware: Any) -> Any:
    headers = app.current_event.headers or {}
    folder = headers.get("X-Probe-Barrier") or headers.get("x-probe-barrier")
    parties = headers.get("X-Probe-Parties") or headers.get("x-probe-parties")
    if folder and parties:
        barrier(folder, int(parties))
    return next_middleware(app)


api.app.use([_meet])
lambda_handler = api.lambda_handler
