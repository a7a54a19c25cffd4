"""The gateway's observer hook: told when a call starts and ends (tracing, gateway/telemetry.py).

None by default: the gateway then makes no call at all (one `is None` test per request). The observer sees
the call's response as it is sent (its `send`, wrapped) and the call's outcome on `Call` (status, usage,
provider, attempts) when it ends; tries of upstream targets reach it through the target policy it wraps.
"""

from __future__ import annotations

from typing import Protocol

from tollway.gateway.call import Call
from tollway.gateway.endpoint import Endpoint
from tollway.gateway.http import Scope, Send


class CallObserver(Protocol):
    def started(self, call: Call, scope: Scope, endpoint: Endpoint, send: Send) -> Send:
        """A call to `endpoint` begins (authenticated or not); returns the `send` the call answers through."""
        ...

    def ended(self, call: Call) -> None:
        """The call is over: answered, refused or failed (always after `started`, once)."""
        ...
