"""Loading and saving models: PaddleNLP names, PaddleNLP folders, and Hugging Face (PyTorch) folders.

A Hugging Face folder is converted in a private copy: PaddleNLP's converter writes its output into the
folder it reads, and a user's model folder (or a pip package's) must stay untouched.
"""
import os
import shutil
import tempfile

from utils.errors import UserError

PADDLE_WEIGHTS = ("model_state.pdparams",)
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
PADDLE_FORMATS = ("np", "pd")  # a safetensors header's "format" as PaddleNLP writes it; Hugging Face writes "pt"


def paddle_safetensors(path):
    """True when the safetensors file at path was written by PaddleNLP or this suite (its header says "np" or
    "pd"), not by PyTorch: such a folder loads as it is, never through the PyTorch conversion."""
    from safetensors import safe_open
    try:
        with safe_open(path, framework="np") as f:
            return (f.metadata() or {}).get("format") in PADDLE_FORMATS
    except Exception:  # safetensors raises its own error types for a damaged header
        raise UserError("damaged or truncated (its header does not parse); expected a safetensors weights file",
                        path) from None


def quiet_paddlenlp():
    """PaddleNLP's INFO lines (every file it saves) and WARNINGs such as "Some weights ... newly initialized",
    which fine-tuning a base model always triggers, stay out of a normal run; its errors still print."""
    from paddlenlp.utils.log import logger
    logger.set_level("ERROR")


def model_kind(name_or_path):
    """'paddle' or 'hf' for a local folder, 'name' for a PaddleNLP model name; UserError otherwise."""
    if os.path.isdir(name_or_path):
        files = set(os.listdir(name_or_path))
        if "config.json" not in files and "model_config.json" not in files:
            raise UserError("no config.json; expected a PaddleNLP or Hugging Face model folder", name_or_path)
        from utils.files import read_json
        read_json(os.path.join(name_or_path, "config.json" if "config.json" in files else "model_config.json"),
                  "the model's config (a JSON object)")  # a damaged one is named here, not by a loader's guess
        if files & set(PADDLE_WEIGHTS) or ("model.safetensors" in files and paddle_safetensors(
                os.path.join(name_or_path, "model.safetensors"))):
            return "paddle"
        if files & set(HF_WEIGHTS):
            return "hf"
        raise UserError(f"no weights; expected one of {', '.join(PADDLE_WEIGHTS + HF_WEIGHTS)}", name_or_path)
    if os.path.exists(name_or_path):
        raise UserError("is a file; expected a model folder or a PaddleNLP model name", name_or_path)
    if os.sep in name_or_path or name_or_path.startswith("."):
        raise UserError("no such model folder", name_or_path)
    return "name"


def _from_pretrained(cls, source, what, **kwargs):
    try:
        return cls.from_pretrained(source, **kwargs)
    except UserError:
        raise
    except Exception as err:  # paddlenlp raises many types for "cannot download" and "unknown name"
        # the first line, and the next when the first is only a heading ("Error(s) in loading state_dict for X:")
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
        first = (" ".join(lines[:2]) if lines[0].endswith(":") else lines[0])[:300]
        if os.path.isdir(source):  # a local folder: nothing to download, so its own files are at fault
            raise UserError(f"could not load the {what} from this folder ({first}); its config or weights are "
                            "damaged, incomplete or of another model type", source) from None
        raise UserError(f"could not load the {what} ({first}); offline, pass a local model folder",
                        source) from None


def load_model(cls, name_or_path, **kwargs):
    """`cls.from_pretrained` for any of the three sources; kwargs (num_labels, ...) pass through."""
    kind = model_kind(name_or_path)
    if kind != "name":  # from_pretrained unpickles the folder's weights: refuse one that could run code first
        from utils.safe_pickle import check_model_folder
        check_model_folder(name_or_path)
    if kind != "hf":
        return _from_pretrained(cls, name_or_path, "model", **kwargs)
    with tempfile.TemporaryDirectory(prefix="hf_convert_") as tmp:
        for name in os.listdir(name_or_path):
            src = os.path.join(name_or_path, name)
            if os.path.isfile(src) and (name.endswith(".json") or name in HF_WEIGHTS or name == "vocab.txt"):
                shutil.copy(src, tmp)
        return _from_pretrained(cls, tmp, "Hugging Face model", convert_from_torch=True, **kwargs)


def load_tokenizer(name_or_path):
    from paddlenlp.transformers import AutoTokenizer
    if not os.path.isfile(os.path.join(name_or_path, "tokenizer_config.json")):  # export folders have no weights
        model_kind(name_or_path)
    return _from_pretrained(AutoTokenizer, name_or_path, "tokenizer")
