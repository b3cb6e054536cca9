"""`python -m mlfort` runs the command line."""

from mlfort.cli import main

main()
