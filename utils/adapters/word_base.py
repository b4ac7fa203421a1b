"""The adapter plumbing the word students (bilstm, cnn, bow) share: build/load/save, forward, export and
multi-task twins (WordAdapter), plus the layers of the two siamese students (SiameseModel, masked pooling).

Every formulation here is chosen to export: no sequence_length argument (paddle2onnx drops it from the LSTM,
silently giving wrong logits), no arange, no empty tensors, and dropout that is no op at all in eval mode.
"""
import os

import numpy as np
import paddle
import paddle.nn.functional as F

from utils.adapters.base import ARCH_KEY, Adapter, read_config, write_config
from utils.adapters.words import WordEncoder, resolve_options, vector_init
from utils.errors import UserError
from utils.files import load_model_state, save_model_state
from utils.models import WORD_OPTIONS

OWN_KEYS = frozenset(WORD_OPTIONS) | {"num_labels", "pair", ARCH_KEY}  # config.json keys that are not label metadata


# ---- layers

def real_mask(ids):
    """Float [batch, len]: 1 at real words, 0 at padding (id 0)."""
    return (ids != 0).astype("float32")


def int64(value):
    """An int64 constant tensor. Integer arithmetic must use these rather than Python numbers: `ids + 3` is a
    paddle scale op, which paddle2onnx computes in float32 (wrong beyond 2**24, as bigram hashes are)."""
    return paddle.full([1], value, "int64")


def lengths_and_positions(ids):
    """Real words per row [batch, 1] and each column's index [batch, len]: a cumsum of ones, which exports where
    arange with a dynamic end is less portable (ones from a comparison: ones_like warns in static graphs)."""
    lengths = (ids != 0).astype("int64").sum(axis=1, keepdim=True)
    return lengths, paddle.cumsum((ids >= 0).astype("int64"), axis=1) - int64(1)


def masked_max(x, mask):
    """Max over time of x [batch, len, width] at the real positions only (mask [batch, len])."""
    return (x + (mask.unsqueeze(-1) - 1.0) * 1e4).max(axis=1)


class WordEmbedding(paddle.nn.Embedding):
    """An embedding whose [PAD] row starts at zero and gets no gradient while training (padding_idx), so it stays
    zero. Outside training it is a plain lookup, equal since the row is zero: paddle2onnx honours padding_idx by
    multiplying the whole table by a mask on every call (a pass over every weight for each lookup)."""

    def forward(self, ids):
        return F.embedding(ids, self.weight, padding_idx=self._padding_idx if self.training else None)


def word_embedding(vocab_size, emb_dim, init=None):
    """A WordEmbedding from the vectors' matrix when given, else small normal noise; [PAD] zeros either way."""
    if init is None:
        init = np.random.default_rng(seed_from_paddle()).normal(0.0, 0.1, (vocab_size, emb_dim)).astype(np.float32)
        init[0] = 0.0
    attr = paddle.ParamAttr(initializer=paddle.nn.initializer.Assign(init))
    return WordEmbedding(vocab_size, init.shape[1], padding_idx=0, weight_attr=attr)


def seed_from_paddle():
    """A numpy seed drawn from paddle's generator, so numpy-made weights follow paddle.seed()."""
    return int(paddle.randint(0, 2 ** 31 - 1, [1]).item())


def stack_pair(ids_a, ids_b):
    """[ids_a; ids_b] as one [2 * batch, longer length] batch, each padded with zeros (no dynamic-shape fill)."""
    width = paddle.maximum(paddle.shape(ids_a)[1], paddle.shape(ids_b)[1])
    a = paddle.concat([ids_a, ids_b * int64(0)], axis=1)[:, :width]
    b = paddle.concat([ids_b, ids_a * int64(0)], axis=1)[:, :width]
    return paddle.concat([a, b], axis=0)


class SiameseModel(paddle.nn.Layer):
    """A text encoder (ids [batch, len] -> [batch, width]) on each text -> [u; v; u*v; |u-v|] for pairs ->
    dropout -> ReLU layer -> dropout -> classifier. `text` and `hidden` may be shared with a twin."""

    def __init__(self, text, width, mlp_size, num_labels, dropout, pair, hidden=None):
        super().__init__()
        self.text, self.width, self.dropout, self.pair = text, width, dropout, pair
        self.hidden = hidden if hidden is not None else paddle.nn.Linear(width * (4 if pair else 1), mlp_size)
        self.classifier = paddle.nn.Linear(self.hidden.weight.shape[1], num_labels)

    def _drop(self, x):
        # in eval mode not even an identity op is recorded, so exported graphs carry none
        return F.dropout(x, self.dropout) if self.training and self.dropout > 0 else x

    def forward(self, ids_a, ids_b=None):
        if self.pair:
            # both texts in one batch: a BiLSTM's time goes mostly per step, not per row (batch 1, 20 + 20 words:
            # 2.9 ms against 1.9 ms for one text in onnxruntime)
            both = self.text(stack_pair(ids_a, ids_b))
            rows = paddle.shape(ids_a)[0]
            x, v = both[:rows], both[rows:]
            x = paddle.concat([x, v, x * v, paddle.abs(x - v)], axis=-1)
        else:
            x = self.text(ids_a)
        return self.classifier(self._drop(F.relu(self.hidden(self._drop(x)))))

    def twin(self, num_labels):
        return SiameseModel(self.text, self.width, None, num_labels, self.dropout, self.pair, hidden=self.hidden)


class _Logits(paddle.nn.Layer):
    """forward(ids_a) -> logits: what gets exported (parameter names = the graph's input names)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids_a):
        return self.model(ids_a)


class _PairLogits(_Logits):
    def forward(self, ids_a, ids_b):
        return self.model(ids_a, ids_b)


# ---- the adapter

class WordAdapter(Adapter):
    """Shared by the word students; a subclass sets `arch` and defines make_model, shape and flops."""
    uses_vectors = True

    def __init__(self, model, encoder, options, num_labels):
        super().__init__(model, encoder)
        self.options, self.num_labels = resolve_options(options), num_labels
        self.label_info = {}  # e.g. id2label/label2id: written into config.json as is
        self.vector_coverage = None  # fraction of the vocabulary found in the word vectors, when built from them

    @classmethod
    def make_model(cls, encoder, num_labels, options, init):
        """The paddle model; init is the embedding matrix from word vectors, or None."""
        raise NotImplementedError

    @classmethod
    def build(cls, encoder, num_labels, options, vectors=None):
        """A fresh student over encoder's vocabulary; embeddings from the word vectors at path `vectors` (a
        student without embeddings, bow, ignores them and leaves vector_coverage None)."""
        options, init, coverage = resolve_options(options), None, None
        if vectors and cls.uses_vectors:
            init, coverage = vector_init(encoder.tokens, vectors, np.random.default_rng(seed_from_paddle()))
            options["emb_dim"] = init.shape[1]
        adapter = cls(cls.make_model(encoder, num_labels, options, init), encoder, options, num_labels)
        adapter.vector_coverage = coverage
        return adapter

    def forward(self, inputs, requests=()):
        if requests:
            raise UserError(f"the {self.arch} student has no transformer layers or attention: only "
                            "prediction-layer distillation (logits) applies to it")
        ids_a = inputs["ids_a"]
        logits = self.model(ids_a, inputs["ids_b"]) if self.encoder.pair else self.model(ids_a)
        return {"logits": logits, "mask": real_mask(ids_a), "features": []}

    def part_of(self, name):
        """The word vectors are the embeddings (what --freeze_embeddings keeps); the rest is the head."""
        return "embeddings" if name.split(".")[-2:-1] == ["embedding"] else "head"

    def text_lengths(self, seq_len):
        """The words of each text in a flops() example: seq_len in all, split between the texts of a pair (as a
        BERT's seq_len holds both)."""
        return [seq_len] if not self.encoder.pair else [max(1, seq_len - seq_len // 2), max(1, seq_len // 2)]

    def set_label_info(self, info):
        """Label metadata (id2label, label2id) for config.json; num_labels and the like are the adapter's own."""
        self.label_info.update({k: v for k, v in info.items() if k not in OWN_KEYS})

    def save(self, folder):
        os.makedirs(folder, exist_ok=True)
        config = dict(self.label_info)
        config.update(self.options, num_labels=self.num_labels, pair=self.encoder.pair, **{ARCH_KEY: self.arch})
        write_config(folder, config)
        save_model_state(self.model.state_dict(), folder)
        self.encoder.save(folder)

    @classmethod
    def load(cls, folder, num_labels=None, **label_info):
        """A saved student; with num_labels other than the saved count, a fresh classifier of that size."""
        config = _read_own_config(folder, cls.arch)
        encoder = WordEncoder.load(folder)
        if config.get("pair") != encoder.pair:
            raise UserError(f'"pair": {config.get("pair")} disagrees with the vocabulary\'s settings '
                            f"({encoder.pair})", os.path.join(folder, "config.json"))
        saved = config["num_labels"]
        adapter = cls(cls.make_model(encoder, saved, resolve_options(config), None), encoder, config, saved)
        _load_weights(adapter.model, folder)
        if num_labels is not None and num_labels != saved:
            adapter = adapter.with_labels(num_labels)
        adapter.label_info = {k: v for k, v in config.items() if k not in OWN_KEYS}
        adapter.set_label_info(label_info)
        return adapter

    def export_layer(self):
        """The logits for the encoder's inputs, positionally; in eval mode (the shared model is switched too)."""
        layer = (_PairLogits if self.encoder.pair else _Logits)(self.model)
        layer.eval()
        return layer

    def with_labels(self, num_labels):
        return type(self)(self.model.twin(num_labels), self.encoder, self.options, num_labels)


def _read_own_config(folder, arch):
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise UserError(f"no such file; expected the config.json of a saved {arch} student", path)
    try:
        config = read_config(folder)
    except ValueError as err:
        raise UserError(f"not valid JSON ({err})", path) from None
    if not isinstance(config, dict) or config.get(ARCH_KEY) != arch:
        raise UserError(f'expected "{ARCH_KEY}": "{arch}"', path)
    n = config.get("num_labels")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise UserError(f'expected "num_labels": a positive integer, got {n!r}', path)
    return config


def _load_weights(model, folder):
    state = load_model_state(folder, "the student's weights")  # model.safetensors, or an older model_state.pdparams
    own = model.state_dict()
    wrong = sorted(set(own) ^ set(state)) or [k for k in own if list(own[k].shape) != list(state[k].shape)]
    if wrong:
        raise UserError(f"weights do not match the config (first: {wrong[0]})", folder)
    model.set_state_dict(state)
