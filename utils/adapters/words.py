"""What the word-level students (bilstm, cnn, bow) share: their options, a fast lower-cased basic tokenizer and
vocabulary (WordEncoder), embedding initialisation from word vectors, and the adapter plumbing (WordAdapter).

The tokenizer lower-cases, strips accents, and splits letter/digit runs from every other non-space character
(BERT's basic tokenizer, CJK characters one by one) with one compiled regex, so ~1M short sentences encode in
seconds. Training, export and prediction all go through `tokenize`, so they cannot disagree.
"""
import hashlib
import json
import os
import re
import unicodedata
from collections import Counter, OrderedDict

import numpy as np

from utils.adapters.base import Encoder
from utils.augment import load_vectors
from utils.batches import Features, labels_array
from utils.errors import UserError
from utils.files import read_json
from utils.models import WORD_OPTIONS

PAD, UNK = "[PAD]", "[UNK]"  # ids 0 and 1
VOCAB_FILE = "vocab.txt"
SETTINGS_FILE = "tokenizer_config.json"  # the name export folders already copy
TOKENIZER = "lower-basic-v1"  # recorded in SETTINGS_FILE: change it whenever tokenize() changes

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+|\S")  # a CJK character, a letter/digit run, or any other character


def tokenize(text):
    """Lower-cased words and punctuation marks of text, accents removed: "Café, isn't it?" ->
    ['cafe', ',', 'isn', "'", 't', 'it', '?']."""
    text = text.lower()
    if not text.isascii():  # the slow path only for the few texts that need it
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return _TOKEN.findall(text)


def resolve_options(options):
    """Every option with its default filled in and its type checked; keys that are not options are ignored, so
    callers may pass a whole argument dict."""
    out = OrderedDict()
    for name, (kind, default, _) in WORD_OPTIONS.items():
        value = (options or {}).get(name)
        try:
            out[name] = default if value is None else kind(value)
        except (TypeError, ValueError):
            raise UserError(f"--{name}: expected {kind.__name__}, got {value!r}") from None
    positive = ("emb_dim", "hidden_size", "mlp_size", "num_filters", "num_buckets", "min_count")
    for name in positive:
        if out[name] < 1:
            raise UserError(f"--{name} must be at least 1, got {out[name]}")
    if not 0 <= out["dropout"] < 1:
        raise UserError(f"--dropout must be in [0, 1), got {out['dropout']}")
    if out["max_vocab_size"] < 0 or out["max_vocab_size"] in (1, 2):
        raise UserError(f"--max_vocab_size must be 0 (no limit) or at least 3, got {out['max_vocab_size']}")
    kernel_sizes(out)
    return out


def kernel_sizes(options):
    """The cnn's kernel widths as a tuple of ints, from the comma-separated option."""
    try:
        sizes = tuple(int(k) for k in str(options["kernel_sizes"]).split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise UserError(f"--kernel_sizes: expected positive integers separated by commas, got "
                        f"{options['kernel_sizes']!r}")
    return sizes


def example_texts(examples):
    """Every text of examples (text_a, then text_b where there is one): what WordEncoder.build counts."""
    for e in examples:
        yield e.text_a
        if e.text_b is not None:
            yield e.text_b


class WordEncoder(Encoder):
    """Texts -> word ids over a vocabulary built from training texts; "ids_a" (and "ids_b" for pairs)."""

    def __init__(self, tokens, pair):
        self.tokens, self.pair = list(tokens), bool(pair)
        self.vocab = {t: i for i, t in enumerate(self.tokens)}
        self.input_names = ("ids_a", "ids_b") if self.pair else ("ids_a",)
        self.pads = {name: 0 for name in self.input_names}
        self._signature = None

    def __len__(self):
        return len(self.tokens)

    @classmethod
    def build(cls, texts, pair, min_count=1, max_vocab_size=100000):
        """Vocabulary of the words seen at least min_count times, most frequent first (ties alphabetical, so the
        same texts in any order give the same ids), capped at max_vocab_size entries with [PAD] and [UNK]."""
        counts = Counter()
        for text in texts:
            if text is not None:
                counts.update(tokenize(text))
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_vocab_size:
            words = words[:max(0, max_vocab_size - 2)]
        return cls([PAD, UNK] + words, pair)

    def ids(self, text, max_len):
        """One text's ids, at most max_len of them and never none: an empty text is [UNK]."""
        get = self.vocab.get
        return np.array([get(w, 1) for w in tokenize(text or "")[:max_len]] or [1], dtype=np.int64)

    def encode(self, examples, max_seq_length, regression=False, desc="encode"):
        from tqdm import tqdm
        if max_seq_length < 1:
            raise UserError(f"max_seq_length must be at least 1, got {max_seq_length}")
        columns = {name: [] for name in self.input_names}
        if examples and (examples[0].text_b is not None) != self.pair:
            raise UserError(f"this student reads {'sentence pairs' if self.pair else 'single texts'}; the examples "
                            f"are {'pairs' if examples[0].text_b is not None else 'single texts'}")
        for e in tqdm(examples, desc=desc, unit="ex", leave=False, mininterval=2, disable=len(examples) < 200000):
            columns["ids_a"].append(self.ids(e.text_a, max_seq_length))
            if self.pair:
                columns["ids_b"].append(self.ids(e.text_b, max_seq_length))
        return Features(columns, labels_array(examples, regression), dict(self.pads))

    def save(self, folder):
        with open(os.path.join(folder, VOCAB_FILE), "w", encoding="utf-8") as f:
            f.write("\n".join(self.tokens) + "\n")
        with open(os.path.join(folder, SETTINGS_FILE), "w", encoding="utf-8") as f:
            json.dump({"tokenizer_class": "WordEncoder", "tokenizer": TOKENIZER, "pair": self.pair}, f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, folder):
        return cls(read_vocab(os.path.join(folder, VOCAB_FILE)), _read_settings(os.path.join(folder, SETTINGS_FILE)))

    def signature(self):
        if self._signature is None:
            digest = hashlib.sha256("\n".join(self.tokens).encode("utf-8")).hexdigest()
            self._signature = ("words", TOKENIZER, self.pair, digest)
        return self._signature


def read_vocab(path):
    """The tokens of a vocab.txt, checked: [PAD] and [UNK] first, then distinct tokens without whitespace."""
    expected = f"expected a word vocabulary: one token per line, {PAD} then {UNK} first"
    if not os.path.isfile(path):
        raise UserError(f"no such file; {expected}", path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError:
        raise UserError(f"not UTF-8 text; {expected}", path) from None
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    tokens = [line.rstrip("\r") for line in lines]
    if len(tokens) < 2:
        raise UserError(f"{len(tokens)} line(s); {expected}", path)
    seen = set()
    for number, (token, want) in enumerate(zip(tokens, [PAD, UNK] + [None] * len(tokens)), 1):
        if want is not None and token != want:
            raise UserError(f"found {token!r} where {want} belongs; {expected}", path, number)
        if not token or token.split() != [token]:
            raise UserError(f"token {token!r} is empty or contains whitespace; {expected}", path, number)
        if token in seen:
            raise UserError(f"token {token!r} appears twice; {expected}", path, number)
        seen.add(token)
    return tokens


def _read_settings(path):
    """The pair flag from the encoder's settings file, refusing another tokenizer's."""
    if not os.path.isfile(path):
        raise UserError(f"no such file; expected the word encoder's settings ({SETTINGS_FILE} with "
                        f'"tokenizer": "{TOKENIZER}" and "pair")', path)
    settings = read_json(path, "the word encoder's settings")
    if not isinstance(settings.get("pair"), bool):
        raise UserError('expected a JSON object with "pair": true or false', path)
    if settings.get("tokenizer") != TOKENIZER:
        raise UserError(f"tokenizer {settings.get('tokenizer')!r}; this version tokenizes as {TOKENIZER!r}", path)
    return settings["pair"]


def vector_init(tokens, path, rng=None, max_vectors=0):
    """Embedding rows for tokens from the word vectors at path, and the coverage (the fraction of words other
    than [PAD]/[UNK] that had a vector). Words without one get normal noise of the vectors' own spread, so they
    start on the same scale; [PAD] is zeros."""
    kv = load_vectors(path, max_vectors)
    if len(kv.index_to_key) == 0:
        raise UserError("no word vectors in this file", path)
    vectors = np.asarray(kv.vectors, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise UserError("the word vectors contain NaN or infinite values", path)
    rng = rng if rng is not None else np.random.default_rng(0)
    matrix = rng.normal(0.0, float(vectors.std()) or 1.0, (len(tokens), vectors.shape[1])).astype(np.float32)
    found = [i for i in range(2, len(tokens)) if tokens[i] in kv.key_to_index]
    matrix[found] = vectors[[kv.key_to_index[tokens[i]] for i in found]]
    matrix[0] = 0.0
    return matrix, len(found) / max(1, len(tokens) - 2)
