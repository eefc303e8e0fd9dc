"""``python -m impasto`` and the ``impasto`` command's entry point.

The command line is imported inside :func:`run`, so a Ctrl-C that arrives while Python is still
importing it is one line and exit code 130, not a traceback.
"""

import sys


def run() -> int:
    """Import the command line and run it; a Ctrl-C during the import is one line."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("\nimpasto: interrupted", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(run())
