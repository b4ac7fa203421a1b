"""One error type for everything a user can get wrong, reported as one line without a traceback."""
import functools
import sys


class UserError(Exception):
    """Bad input: a missing file, a malformed row, an impossible flag combination."""

    def __init__(self, message, path=None, line=None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


def exits_cleanly(main):
    """Turn UserError into `error: ...` on stderr and exit status 2, for CLI entry points."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
