"""Tools over the services: replay, simulate, report, dashboard, alerts, demo."""
