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

RESULTS_FILE, ARGS_FILE = "all_results.json", "args.json"  # every run folder's results and the flags that made it

from utils.errors import UserError, at_exit
from utils.safe_pickle import check_pickle_file


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
    """paddle.load, with a damaged, truncated or missing file reported as one UserError naming it. The file is a
    pickle: it is checked first (utils.safe_pickle), so one naming anything but arrays and containers never runs."""
    import paddle

    _readable(path, what)
    check_pickle_file(path, what=what, hint=hint)
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


SAFE_WEIGHTS, PICKLED_WEIGHTS = "model.safetensors", "model_state.pdparams"


def load_model_state(folder, what="the model's weights", hint=""):
    """The weights a model folder of this suite holds, as {name: numpy array}: model.safetensors (plain arrays,
    nothing to unpickle) when there, else an older folder's model_state.pdparams through load_state."""
    path = os.path.join(folder, SAFE_WEIGHTS)
    if not os.path.isfile(path):
        return load_state(os.path.join(folder, PICKLED_WEIGHTS), what, hint)
    from safetensors.numpy import load_file
    try:
        return load_file(path)
    except Exception:  # safetensors raises its own error types for a damaged header or a short file
        suffix = f"; {hint}" if hint else ""
        raise UserError(f"damaged or truncated (it does not parse); expected {what} (safetensors){suffix}",
                        path) from None


def save_model_state(state, folder):
    """A state dict as model.safetensors, marked the way PaddleNLP marks its own ("format": "np"), so that it is
    never mistaken for a Hugging Face (PyTorch) file and converted."""
    from safetensors.numpy import save_file
    save_file({k: v.numpy() for k, v in state.items()}, os.path.join(folder, SAFE_WEIGHTS), metadata={"format": "np"})


# ---- one run per output folder

LOCK_FILE = ".run.lock"  # inside the output folder while a run writes there; removed when it ends
_HELD = {}  # real path of an output folder -> (fd, lock file) this process holds


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


def _holder(record):
    """'pid N on host H (started T)' from a lock file's record, for the refusal."""
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return "a process whose record is unreadable"
    return f"pid {record['pid']} on host {record.get('host', '?')}, started {record.get('started', '?')}"


def _read_record(fd):
    try:
        return json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
    except (OSError, ValueError):
        return None


def lock_output_dir(folder):
    """Hold `folder` for this process until the running entry point ends (utils.errors.at_exit): a second run on
    it, started while this process lives, is refused naming this process.

    The lock is a flock on LOCK_FILE: the kernel drops it when its process dies however it dies, so a lock left
    by a killed run never blocks the next one (the file alone proves nothing). The file's record (pid, host,
    boot, start time) only names the holder. Where the file system has no flock, the record decides: a holder on
    another host, an earlier boot or a pid that is gone is stale."""
    import fcntl
    import socket
    import time

    key = os.path.realpath(folder)
    if key in _HELD:
        return  # an earlier run of this very process, on the same folder
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    host, boot = socket.gethostname(), _boot_id()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            record = _read_record(fd)
            os.close(fd)
            raise UserError(f"another run is writing to this output folder ({_holder(record)}); wait for it to end "
                            "or pass another --output_dir", folder) from None
        except OSError as err:
            import errno
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            record = _read_record(fd)  # no flock here: trust a record only for a live process of this boot
            if isinstance(record, dict) and record.get("host") == host and record.get("boot") == boot and \
                    isinstance(record.get("pid"), int) and record["pid"] != os.getpid() and _alive(record["pid"]):
                os.close(fd)
                raise UserError(f"another run is writing to this output folder ({_holder(record)}); wait for it to "
                                "end or pass another --output_dir", folder) from None
        try:  # a holder that just ended unlinks the file it locked: lock the current file, not that one
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    record = {"pid": os.getpid(), "host": host, "boot": boot, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
    _HELD[key] = (fd, path)
    at_exit(lambda: _release(key))


def release_output_dir(folder):
    """Let another run use `folder` (at the latest, this happens when the entry point ends)."""
    _release(os.path.realpath(folder))


def _release(key):
    # the file goes while it is still locked: a run that opened it just before sees it unlinked and locks anew
    held = _HELD.pop(key, None)
    if held is None:
        return
    fd, path = held
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    os.close(fd)
