"""The dashboard: live verdicts and config over SSE, with token-guarded controls."""
