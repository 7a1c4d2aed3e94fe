"""Command-line tools, each run as `python -m stickysplit.tools.<name>` by its scripts/ entry point."""
