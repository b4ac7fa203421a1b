"""One error type for everything a user can get wrong, reported as one line without a traceback."""
import errno
import functools
import os
import sys

# a write that cannot succeed however often it is retried: reported in one line, not a traceback
WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


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
        except OSError as err:
            if err.errno not in WRITE_FAILURES:
                raise
            what = os.strerror(err.errno).lower()
            where = err.filename or "the output"
            if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                print(f"error: {what} while writing {where}; partial files were removed, earlier complete outputs "
                      "and checkpoints are intact (--resume continues from the last checkpoint where the script "
                      "has one)", file=sys.stderr)
            else:
                print(f"error: {where}: {what}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
