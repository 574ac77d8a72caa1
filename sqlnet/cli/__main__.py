"""`python -m sqlnet.cli`: the same as the `sqlnet` command."""

from sqlnet.cli import main

main()
