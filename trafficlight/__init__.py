"""trafficlight: canary rollouts for webhook traffic."""

__version__ = "0.1.0"
