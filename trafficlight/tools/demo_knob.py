"""`trafficlight demo-knob`: turn the running demo's simulated handlers up or down."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from trafficlight.base.errors import ConfigError, TrafficlightError


def knobs_url() -> str:
    from trafficlight.tools.demo import state_file

    try:
        return str(json.loads(state_file().read_text())["knobs_url"])
    except (OSError, ValueError, KeyError):
        raise ConfigError(f"no running demo found ({state_file()} is missing): "
                          "start `trafficlight demo` from this folder first") from None


def call_knobs(url: str, changes: dict[str, Any] | None) -> dict[str, Any]:
    data = None if changes is None else json.dumps(changes).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        raise TrafficlightError(json.loads(exc.read() or b"{}").get("error", str(exc))) from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise TrafficlightError(f"the demo's handlers do not answer at {url}: {exc}") from None
