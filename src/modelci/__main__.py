"""`python -m modelci`: the same as the `modelci` command."""

from modelci.cli import main

main()
