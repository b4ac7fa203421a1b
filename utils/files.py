"""Reading and writing the files a run owns, so that a reader never sees half a file and bad files give one error.

Every output is built under a temporary name in its final folder and renamed when complete (a rename within a
folder is atomic), so a crash, a kill or a full disk leaves either the old complete output or none; temporary
names are removed on failure. Every JSON or weights file a user can hand us is read through `read_json` /
`load_state`, which name the file and what is wrong instead of raising the parser's exception.
"""
import contextlib
import json
import os
import shutil
import tempfile

from utils.errors import UserError


def follow_umask(path):
    """Give a file or folder made by mkstemp/mkdtemp (always 0600/0700) the modes the user's umask allows, so a
    team can read a shared model folder; a folder's files too."""
    mask = os.umask(0)
    os.umask(mask)
    if os.path.isdir(path):
        os.chmod(path, 0o777 & ~mask)
        for name in os.listdir(path):
            full = os.path.join(path, name)
            if os.path.isfile(full) and not os.path.islink(full):
                os.chmod(full, 0o666 & ~mask)
            elif os.path.isdir(full):
                follow_umask(full)
    else:
        os.chmod(path, 0o666 & ~mask)


def _named(err, path, tmp):
    """The OSError of a write, naming the output it was for: a full disk fails in write() with no file name, and
    a failure inside the temporary file or folder names a temporary path the user never asked for."""
    name = err.filename if isinstance(err.filename, str) else None
    err.filename = path + name[len(tmp):] if name and name.startswith(tmp) else name or path
    return err


def check_output_file(path):
    if os.path.isdir(path):
        raise UserError("is a directory; expected an output file path", path)


def check_output_dir(path):
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError("is a file; expected an output directory", path)


@contextlib.contextmanager
def atomic_file(path, mode="w"):
    """Open a temporary file beside `path` (its folder is created); rename it to `path` when the block ends
    without error, remove it otherwise. Yields the open file."""
    check_output_file(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        follow_umask(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise _named(err, path, tmp)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)  # a failed write (disk full, an exception in the block) leaves nothing behind


def write_json(path, data):
    with atomic_file(path) as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


def replace_dir(new, target):
    """Put folder `new` at `target`; an old `target` is moved aside first and removed last."""
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=os.path.basename(target) + ".old", dir=os.path.dirname(os.path.abspath(target)))
        os.rmdir(old)
        os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        if old:
            os.rename(old, target)  # the earlier folder (a checkpoint --resume needs) goes back under its name
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_folder(target, fill):
    """Build a folder under a temporary name with fill(tmp_path), then swap it in whole: readers never see half
    of it, and a failure leaves no partial folder and the earlier one (if any) untouched."""
    check_output_dir(target)
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(target) + ".tmp", dir=parent)
    try:
        fill(tmp)
        follow_umask(tmp)
        replace_dir(tmp, target)
    except OSError as err:
        raise _named(err, target, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the rename succeeded


def _readable(path, what):
    if os.path.isdir(path):
        raise UserError(f"is a directory; expected {what}", path)
    if not os.path.exists(path):
        raise UserError(f"no such file; expected {what}", path)


def text_lines(path, what):
    """(line number, line without its end and a leading BOM) of a UTF-8 text file; a missing file, a folder or a
    line that is not UTF-8 is a UserError naming the file (and line)."""
    _readable(path, what)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
            except UnicodeDecodeError:
                raise UserError(f"not UTF-8 text; expected {what}", path, lineno) from None


def read_json(path, what="a JSON object", hint=""):
    """The JSON object in `path`; UserError naming the file (and line) when it is missing, unreadable, not JSON
    or not an object. `hint` is appended to the message (e.g. how to start over)."""
    _readable(path, what)
    suffix = f"; {hint}" if hint else ""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise UserError(f"not valid JSON ({err.msg} at column {err.colno}); expected {what}{suffix}", path,
                        err.lineno) from None
    except UnicodeDecodeError:
        raise UserError(f"not UTF-8 text; expected {what}{suffix}", path) from None
    except OSError as err:
        raise UserError(f"cannot read ({os.strerror(err.errno).lower()}); expected {what}{suffix}", path) from None
    if not isinstance(data, dict):
        raise UserError(f"holds a JSON {type(data).__name__}; expected {what}{suffix}", path)
    return data


def load_state(path, what="a weights file written by paddle.save", hint=""):
    """paddle.load, with a damaged, truncated or missing file reported as one UserError naming it."""
    import paddle
    _readable(path, what)
    suffix = f"; {hint}" if hint else ""
    try:
        state = paddle.load(path)
    except OSError as err:
        raise UserError(f"cannot read ({os.strerror(err.errno).lower() if err.errno else err}); expected {what}"
                        f"{suffix}", path) from None
    except Exception:  # paddle raises ValueError/RuntimeError/UnpicklingError for a damaged file
        raise UserError(f"damaged or truncated (it does not parse); expected {what}{suffix}", path) from None
    if not isinstance(state, dict):
        raise UserError(f"holds a {type(state).__name__}; expected {what}{suffix}", path)
    return state
