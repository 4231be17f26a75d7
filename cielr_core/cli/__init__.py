"""The command line's subcommands (``python -m cielr_core``; the entry point is ``cielr_core.__main__``)."""
