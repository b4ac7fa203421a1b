"""One error type for everything a user can get wrong, reported as one line without a traceback."""
import atexit
import errno
import functools
import os
import sys

# a write that cannot succeed however often it is retried: reported in one line even when the OSError names no file
WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


# what a training script's user is told when the disk fills (see exits_cleanly)
FROM_CHECKPOINT = ("the partial output was removed; earlier outputs and the last complete checkpoint are intact and "
                   "--resume continues from it (or starts over if none was written)")


# what the running entry point must undo however it ends (e.g. release its output folder's lock); see at_exit
_AT_EXIT = []


def at_exit(release):
    """Call `release` when the entry point that is running ends, normally or by an error (exits_cleanly), or at
    interpreter exit when no entry point wraps the caller."""
    _AT_EXIT.append(release)


def _release_since(depth):
    while len(_AT_EXIT) > depth:
        _AT_EXIT.pop()()


atexit.register(_release_since, 0)


class UserError(Exception):
    """Bad input: a missing file, a malformed row, an impossible flag combination."""

    def __init__(self, message, path=None, line=None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


def first_line(err, width=160):
    """An exception's message cut to its first line (at most width characters), for a one-line report of what a
    library raised; the exception's type name when the message is empty."""
    lines = str(err).strip().splitlines()
    return lines[0][:width] if lines else type(err).__name__


def exits_cleanly(main=None, *, resume="the partial output was removed and earlier complete outputs are intact; run it "
                                         "again once there is room"):
    """Turn UserError, and OSErrors of the file system, into one `error: ...` line on stderr and exit status 2,
    for CLI entry points. `resume` tells a user who ran out of space what is left and whether the work continues."""
    if main is None:
        return functools.partial(exits_cleanly, resume=resume)

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        depth = len(_AT_EXIT)
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except OSError as err:
            # the file system said no (full, read-only, permissions, a folder where a file should be): one line
            # naming the file; an OSError without a file name is a bug and keeps its traceback
            if err.errno not in WRITE_FAILURES and err.filename is None:
                raise
            what = os.strerror(err.errno).lower() if err.errno else str(err)
            where = err.filename or "the output"
            if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                print(f"error: {what} while writing {where}; {resume}", file=sys.stderr)
            else:
                print(f"error: {where}: {what}", file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            _release_since(depth)

    return wrapper
