"""`python -m trafficlight.cli`: the same as the `trafficlight` console script."""

from trafficlight.cli.main import main

main()
