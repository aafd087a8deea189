"""`python -m hub.cli`: the same as the `omnihub` console script."""

from hub.cli import main

main()
