"""``python -m impasto`` and the ``impasto`` command's entry point.

The command line is imported inside :func:`run`, so a Ctrl-C that arrives while Python is still
importing it is one line and exit code 130, not a traceback.
"""

import signal
import sys

INTERRUPTED = 130


def _quiet_exit(code: int) -> int:
    """After a Ctrl-C, a second one (``timeout -s INT`` sends the process group one more) ends
    the process at once while Python shuts down, instead of printing a traceback from an
    interrupted exit handler."""
    if code == INTERRUPTED:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return code


def run() -> int:
    """Import the command line and run it; a Ctrl-C during the import is one line."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("\nimpasto: interrupted", file=sys.stderr)
        return _quiet_exit(INTERRUPTED)
    return _quiet_exit(main())


if __name__ == "__main__":
    sys.exit(run())
