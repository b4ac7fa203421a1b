"""Refusing a pickle that could run code, before anything unpickles it.

`.pdparams`/`.pdopt` files (paddle.load, and PaddleNLP's from_pretrained underneath), gensim `.kv` files and
a Hugging Face `pytorch_model.bin` (a zip around `data.pkl`) are pickles, and unpickling calls whatever globals
the stream names. A weights file only ever needs numpy's array reconstructors and plain containers, so the
stream's opcodes are read with `pickletools.genops` (which executes nothing) and every global it names must be
on a short allowlist for its kind of file. Anything that could call an object we cannot name statically (an
extension-registry code, a STACK_GLOBAL built from computed strings, a persistent id outside a torch zip) is
refused too.

The lists were read off real files: paddle.save of a state dict, of an AdamW state and of a raw tensor
(protocols 2-4), this suite's checkpoints, PaddleNLP's save_pretrained, gensim's KeyedVectors.save.
"""
import os
import pickletools
import zipfile

from utils.errors import UserError

# numpy arrays and scalars as pickled by numpy 1.x (numpy.core) and 2.x (numpy._core); _frombuffer is protocol
# 5's array reconstructor; _codecs.encode carries an array's bytes under protocol 2 (paddle.save(protocol=2))
NUMPY = frozenset({f"numpy.{core}.{name}" for core in ("core", "_core") for name in (
    "multiarray._reconstruct", "multiarray.scalar", "numeric._frombuffer")} | {
    "numpy.ndarray", "numpy.dtype", "_codecs.encode"})
# plain containers (paddle.save pickles a raw Tensor as a tuple); protocol 2 spells builtins __builtin__
CONTAINERS = frozenset({f"{m}.{n}" for m in ("builtins", "__builtin__")
                        for n in ("tuple", "list", "dict", "set", "frozenset")} | {"collections.OrderedDict"})
PADDLE = NUMPY | CONTAINERS
# what torch.load(weights_only=True) accepts in a state dict, and PaddleNLP's converter resolves on its own
TORCH = CONTAINERS | {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
                      "torch._utils._rebuild_parameter_with_state"} | {
    f"torch.{t}Storage" for t in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte",
                                  "Bool")}
GENSIM = PADDLE | {f"gensim.models.keyedvectors.{n}" for n in ("KeyedVectors", "Word2VecKeyedVectors",
                                                                "CompatVocab", "Vocab")}

_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_NO_STACK_CHANGE = {"MEMOIZE", "FRAME", "PROTO"} | _PUTS
_UNKNOWN = object()  # a stack item whose value the walk does not know


class UnsafePickle(Exception):
    """A pickle that could call an object the walk cannot name."""


def pickle_globals(data, persistent_ids=False):
    """Every global (module.name) the pickle stream `data` would import, in order, without executing it.
    UnsafePickle for a stream that could call an object it does not name: an EXT code, a STACK_GLOBAL whose names
    are not literal strings, a persistent id unless `persistent_ids`; ValueError for one that does not parse."""
    found, memo = [], {}
    top = []  # the (at most two) items last pushed, as far as the walk knows them; end = top of the stack
    for op, arg, pos in pickletools.genops(data):
        name = op.name
        if name in ("GLOBAL", "INST"):
            found.append(arg.replace(" ", "."))
            top = top[-1:] + [_UNKNOWN] if name == "GLOBAL" else []
        elif name == "STACK_GLOBAL":
            # its module and name are the two items on top of the stack: only literal strings (or memo copies of
            # them) pushed right before are accepted; anything computed (e.g. by a decoder) could name any function
            if len(top) < 2 or not all(isinstance(v, str) for v in top[-2:]):
                raise UnsafePickle(f"a STACK_GLOBAL at byte {pos} whose module and name are not literal strings")
            found.append(f"{top[-2]}.{top[-1]}")
            top = [_UNKNOWN]
        elif name.startswith("EXT"):
            raise UnsafePickle(f"an extension-registry code ({name}) at byte {pos}, which can stand for any function")
        elif name in ("PERSID", "BINPERSID") and not persistent_ids:
            raise UnsafePickle(f"a persistent id ({name}) at byte {pos}, which a weights file never holds")
        elif name in _STRINGS:
            top = top[-1:] + [arg if isinstance(arg, str) else arg.decode("latin-1")]
        elif name in _GETS:
            top = top[-1:] + [memo.get(arg, _UNKNOWN)]
        elif name in _PUTS or name == "MEMOIZE":
            memo[arg if name in _PUTS else len(memo)] = top[-1] if top else _UNKNOWN
        elif name in _NO_STACK_CHANGE:
            pass
        elif not op.stack_before and len(op.stack_after) == 1:
            top = top[-1:] + [_UNKNOWN]  # another plain push (a number, None, an empty container, a mark)
        else:
            top = []  # an op that pops: what lies below the new top is not tracked
    return found


def _check_stream(data, path, allowed, what, hint, persistent_ids=False):
    suffix = f"; {hint}" if hint else ""
    try:
        bad = next((n for n in pickle_globals(data, persistent_ids) if n not in allowed), None)
        problem = bad and f"its pickle names the global {bad}, which unpickling would call"
    except UnsafePickle as err:
        problem = f"its pickle holds {err}"
    except ValueError:  # genops: an unknown opcode, a truncated argument, no STOP
        raise UserError(f"damaged or truncated (it does not parse); expected {what}{suffix}", path) from None
    if problem:
        raise UserError(f"refused to load: {problem} (a pickle can run any code this way; nothing was loaded); "
                        f"expected {what}{suffix}", path)


def _unreadable(err, path, what, hint):
    reason = os.strerror(err.errno).lower() if getattr(err, "errno", None) else "a damaged zip archive"
    return UserError(f"cannot read ({reason}); expected {what}{f'; {hint}' if hint else ''}", path)


def check_pickle_file(path, allowed=PADDLE, what="a weights file written by paddle.save", hint=""):
    """UserError naming `path` and the offending global unless every global its pickle names is in `allowed`.
    The whole file is read as one pickle stream from its first byte, as paddle.load and gensim read it (whatever
    else the file may also look like)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise _unreadable(err, path, what, hint) from None
    _check_stream(data, path, allowed, what, hint)


def check_torch_zip(path, what="a PyTorch state dict (pytorch_model.bin)"):
    """The same for a PyTorch zip checkpoint, read as PaddleNLP's converter reads it: each .pkl member against
    the torch allowlist, persistent ids (its tensor storages) permitted."""
    import zlib
    try:
        if not zipfile.is_zipfile(path):
            raise UserError(f"not a zip archive; expected {what}", path)
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(".pkl")]
            if not members:
                raise UserError(f"a zip archive without a pickled state; expected {what}", path)
            streams = [(m, archive.read(m)) for m in members]
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise _unreadable(err, path, what, "") from None
    for member, data in streams:
        _check_stream(data, f"{path}:{member}", TORCH, what, "", persistent_ids=True)


def is_model_weights(name):
    """True for the pickled weight files PaddleNLP's from_pretrained may load from a folder (whole or sharded)."""
    return name in ("model_state.pdparams", "pytorch_model.bin") or (
        name.startswith("model_state-") and name.endswith(".pdparams")) or (
        name.startswith("pytorch_model-") and name.endswith(".bin"))


def check_model_folder(folder):
    """Check every pickled weights file a from_pretrained of `folder` could read, before it is called."""
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if is_model_weights(name) and os.path.isfile(path):
            if name.endswith(".bin"):
                check_torch_zip(path)
            else:
                check_pickle_file(path, what="the model's weights (arrays, as save_pretrained writes them)")
