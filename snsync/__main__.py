"""Allow `python -m snsync`."""

from snsync.cli import main

main()
