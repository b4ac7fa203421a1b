"""The model interface everything outside utils/adapters/ uses: encoders (text -> features -> padded arrays) and
adapters (a model behind forward(inputs, requests) -> logits and features). The loop, the losses, export,
prediction and the report never name a model class; adding an architecture is one file and one registry entry
(utils/adapters/__init__.py).

Contracts:
- Encoder: `encode(examples, max_seq_length)` -> Features (utils/batches.py), `pads` {column: pad value},
  `input_names` (the exported graph's inputs, in order; every one an int64 [batch, length] array), `save(folder)`,
  `signature()` (equal signatures tokenise identically, so teacher and student can share one encoding).
- Adapter (a paddle Layer owning the model): `forward(inputs, requests=())` with inputs {column: tensor} ->
  {"logits": [batch, labels], "mask": float [batch, length] of real tokens (None for models without positions),
  "features": one tensor per request (feature, layer, proj)}; `num_labels`; `shape()`; `num_parameters()`; `flops(seq_len)`;
  `save(folder)` writing config.json that names the architecture (key "distill_arch"); `export_layer()` (a Layer
  whose forward takes the encoder's inputs positionally and returns logits); `with_labels(n)` (a twin sharing
  every parameter but the classifier, for multi-task students).
"""
import json
import os

import paddle

from utils.errors import UserError
from utils.files import load_model_state, read_json
from utils.models import ARCH_KEY  # noqa: F401  (the adapters' modules read it from here)


class Encoder:
    input_names = ()
    pads = {}

    def encode(self, examples, max_seq_length, desc="encode"):
        raise NotImplementedError

    def save(self, folder):
        raise NotImplementedError

    def signature(self):
        raise NotImplementedError


class Adapter(paddle.nn.Layer):
    arch = None
    projection = None  # a TinyBERT student's built-in projection kind ("shared"/"per_layer"); None elsewhere
    fit_size = None  # the width that projection maps to
    max_length = None  # the longest input the model can read (a BERT's position embeddings); None: any

    def __init__(self, model, encoder):
        super().__init__()
        self.model, self.encoder = model, encoder

    def forward(self, inputs, requests=()):
        raise NotImplementedError

    def shape(self):
        """{"layers", "hidden", "heads"}: None where the concept does not exist (a BiLSTM has no heads)."""
        raise NotImplementedError

    def set_label_info(self, info):
        """Label names and ids ({"num_labels", "id2label", "label2id"}) saved with the model for predict.py."""
        self.label_info = dict(info)

    head = "sequence"  # one set of logits per example; BERT-family models can have a per-token head

    def num_parameters(self):
        return int(sum(p.size for p in self.model.parameters()))

    def flops(self, seq_len):
        """Floating-point operations (2 per multiply-add) of one example's forward pass at seq_len tokens."""
        raise NotImplementedError

    def save(self, folder):
        raise NotImplementedError

    def restore(self, folder):
        """Load the weights this adapter's save() wrote into `folder` (the model's state, model.safetensors)
        into this very model: a later phase continues from an earlier phase's best."""
        state, own = load_model_state(folder), self.model.state_dict()
        wrong = sorted(set(own) ^ set(state)) or [k for k in own if list(own[k].shape) != list(state[k].shape)]
        if wrong:  # set_state_dict would skip them silently
            raise UserError(f"does not fit this model ({wrong[0]})", folder)
        self.model.set_state_dict(state)

    def part_of(self, name):
        """Which part of the model parameter `name` (relative to this adapter) belongs to, for per-phase
        learning-rate multipliers: "embeddings", a layer number (1-based), "head", or "other" (trained alongside,
        e.g. a projection). Models without layers: all "head"."""
        return "head"

    def export_layer(self):
        raise NotImplementedError

    def label_layer(self):
        """The layer teacher labelling exports: the export layer's logits, computed without any work they do not
        need where the model allows it."""
        return self.export_layer()

    def drop_capture(self):
        """Remove whatever the adapter hooked into its model to read features (a traced teacher program computes
        them itself). Adapters that read features without hooks have nothing to remove."""

    def with_labels(self, num_labels):
        raise NotImplementedError

    def describe(self):
        """One line for logs and results: architecture, shape and size."""
        shape = ", ".join(f"{k} {v}" for k, v in self.shape().items() if v is not None)
        return f"{self.arch} ({shape}; {self.num_parameters():,} parameters)"


def read_config(folder):
    return read_json(os.path.join(folder, "config.json"), "the model's config (JSON object)")


def write_config(folder, config):
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
