"""The dashboard's address and controls token."""

from __future__ import annotations

import os
import secrets

#: Where the controls' token comes from; without it one is generated and printed once.
TOKEN_ENV = "TRAFFICLIGHT_DASHBOARD_TOKEN"


def dashboard_token() -> tuple[str, bool]:
    """The controls' token and whether it was generated here (and so must be shown once)."""
    configured = os.environ.get(TOKEN_ENV, "").strip()
    if configured:
        return configured, False
    return secrets.token_urlsafe(24), True


def dashboard_url(host: str, port: int, token: str | None = None) -> str:
    """The page's address; a token goes in the fragment, which browsers never send or log."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{port}/" + (f"#token={token}" if token else "")
