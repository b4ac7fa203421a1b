"""Loading and saving models: PaddleNLP names, PaddleNLP folders, and Hugging Face (PyTorch) folders.

A Hugging Face folder is converted in a private copy: PaddleNLP's converter writes its output into the
folder it reads, and a user's model folder (or a pip package's) must stay untouched.

Also the names that describe a model without building one (config.json keys, how a student starts, the word
students' options): this module never imports paddle, so scripts list them in `--help` at no cost.
"""
import os
import shutil
import tempfile
from collections import OrderedDict

from utils.errors import UserError
from utils.files import SAFE_WEIGHTS, read_json
from utils.safe_pickle import check_model_folder

ARCH_KEY = "distill_arch"  # the config.json key naming the adapter that wrote a folder
HEAD_KEY = "distill_head"  # the config.json key naming a BERT-family model's head; absent: sequence
STUDENT_INITS = ("pretrained", "random", "teacher")  # where a BERT-family student's weights start
PROJECTION_LAYOUTS = ("per_layer", "shared")  # a TinyBERT student's fit_dense: one per layer, or one for all

# the word students' (bilstm, cnn, bow) options, name -> (type, default, help): one command-line flag and one
# config.json key each
WORD_OPTIONS = OrderedDict([
    ("emb_dim", (int, 300, "bilstm, cnn: word embedding width (replaced by the vectors' width when word vectors "
                           "are given)")),
    ("hidden_size", (int, 300, "bilstm: LSTM hidden units per direction")),
    ("mlp_size", (int, 400, "bilstm, cnn: width of the ReLU layer between the text representation and the logits")),
    ("dropout", (float, 0.1, "bilstm, cnn: dropout on the text representation and on the ReLU layer (training only)")),
    ("kernel_sizes", (str, "3,4,5", "cnn: convolution widths in words, comma-separated")),
    ("num_filters", (int, 100, "cnn: filters per convolution width")),
    ("num_buckets", (int, 2 ** 18, "bow: hash buckets of the word bigrams")),
    ("min_count", (int, 1, "bilstm, cnn, bow: occurrences in the training texts a word needs to enter the "
                           "vocabulary")),
    ("max_vocab_size", (int, 100000, "bilstm, cnn, bow: vocabulary size cap including [PAD] and [UNK] (the most "
                                     "frequent words are kept); 0 = no limit")),
])

PADDLE_WEIGHTS = ("model_state.pdparams",)
HF_WEIGHTS = (SAFE_WEIGHTS, "pytorch_model.bin")
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
        read_json(os.path.join(name_or_path, "config.json" if "config.json" in files else "model_config.json"),
                  "the model's config (a JSON object)")  # a damaged one is named here, not by a loader's guess
        if files & set(PADDLE_WEIGHTS) or (SAFE_WEIGHTS in files and paddle_safetensors(
                os.path.join(name_or_path, SAFE_WEIGHTS))):
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
