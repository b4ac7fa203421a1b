"""BERT-family models behind the adapter interface: any PaddleNLP *ForSequenceClassification (BERT, TinyBERT,
a converted Hugging Face BERT such as the pip MiniLM), with its WordPiece tokenizer. Students of this family are
TinyBERT models: a checkpoint, a fresh model of a named shape, or layers copied from the teacher."""
import os
import re

import numpy as np
import paddle

from utils.adapters.base import ARCH_KEY, Adapter, Encoder
from utils.batches import Features, labels_array
from utils.errors import UserError
from utils.files import load_model_state, read_json
from utils.inference import flops_per_example
from utils.models import HEAD_KEY, PROJECTION_LAYOUTS, load_model, load_tokenizer, model_kind
from utils.wordpiece import FastWordPiece

# (layers, hidden, FFN, heads); the -v2 and -zh checkpoints share their base shape.
TINYBERT_SHAPES = {"tinybert-4l-312d": (4, 312, 1200, 12), "tinybert-6l-768d": (6, 768, 3072, 12)}
SHAPE_PATTERN = re.compile(r"^(\d+)l-(\d+)d$")


class BertEncoder(Encoder):
    """WordPiece ids and segment ids, pairs truncated longest-first to max_seq_length."""
    input_names = ("input_ids", "token_type_ids")

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pads = {"input_ids": tokenizer.pad_token_id, "token_type_ids": 0}
        self._signature = None

    def encode(self, examples, max_seq_length, regression=False, desc="tokenize", chunk=2048):
        from tqdm import tqdm
        from utils.tasks import type_of
        kind = type_of(examples)
        if kind.encode is not None:  # the task type's own pieces: words' first pieces, question + context windows
            return kind.encode(examples, self.tokenizer, max_seq_length)
        ids, types = [], []
        fast = FastWordPiece.of(self.tokenizer)  # the tokenizer's own ids, faster
        for start in tqdm(range(0, len(examples), chunk), desc=desc, unit="chunk", leave=False,
                          disable=len(examples) < 4 * chunk):
            part = examples[start:start + chunk]
            text_a = [e.text_a for e in part]
            text_b = [e.text_b for e in part] if part[0].text_b is not None else None
            if fast is not None:
                part_ids, part_types = fast.encode(text_a, text_b, max_seq_length)
                ids.extend(part_ids)
                types.extend(part_types)
                continue
            enc = self.tokenizer(text_a, text_pair=text_b, max_length=max_seq_length, truncation=True,
                                 return_attention_mask=False)
            ids.extend(np.asarray(x, dtype=np.int64) for x in enc["input_ids"])
            types.extend(np.asarray(x, dtype=np.int64) for x in enc["token_type_ids"])
        return Features({"input_ids": ids, "token_type_ids": types}, labels_array(examples, regression), self.pads)

    def save(self, folder):
        self.tokenizer.save_pretrained(folder)

    def signature(self):
        if self._signature is None:  # stable across processes (it keys the teacher-logit cache): no hash()
            import hashlib
            vocab = "\n".join(f"{t}\t{i}" for t, i in sorted(self.tokenizer.get_vocab().items()))
            lower = getattr(self.tokenizer, "do_lower_case", None)
            self._signature = ("wordpiece", lower, hashlib.sha256(vocab.encode("utf-8")).hexdigest())
        return self._signature


class Capture:
    """Collects hidden states and pre-softmax attention scores of a paddle BERT-style encoder, via hooks.

    Scores come from the query/key projections' outputs (q k^T / sqrt(d)), so they never contain the
    -10000 that the model adds at padded keys: that constant would otherwise dominate an MSE.
    """

    def __init__(self, model, attention=True, parts=None):
        """parts(layer) -> (query projection, key projection, heads) of one encoder layer: BERT's by default."""
        base = model.base_model
        parts = parts or (lambda layer: (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.num_heads))
        self.layers = list(base.encoder.layers)
        self.hidden, self.q, self.k, self.heads, self.attention = {}, {}, {}, {}, {}
        self.handles = [base.embeddings.register_forward_post_hook(self._keep(self.hidden, 0))]
        for i, layer in enumerate(self.layers, 1):
            self.handles.append(layer.register_forward_post_hook(self._keep(self.hidden, i)))
            if attention:
                query, key, self.heads[i] = parts(layer)
                self.attention[i] = getattr(layer, "self_attn", None)
                self.handles.append(query.register_forward_post_hook(self._keep(self.q, i)))
                self.handles.append(key.register_forward_post_hook(self._keep(self.k, i)))

    @staticmethod
    def _keep(store, key):
        def hook(layer, inputs, output):
            store[key] = output[0] if isinstance(output, (tuple, list)) else output
        return hook

    def scores(self, i):
        """Pre-softmax attention scores of layer i (1-based): [batch, heads, seq, seq]. Shapes are written so that
        the same code traces into a static graph (batch and length unknown there: 0 keeps an input dimension).
        An attention layer that kept this forward's scores (kernels.CompiledAttention) serves them as they are."""
        kept = getattr(self.attention[i], "scores", None) if i in self.attention else None
        if kept is not None:
            return kept
        heads = self.heads[i]
        size = self.q[i].shape[-1] // heads
        q, k = (x.reshape([0, 0, heads, size]).transpose([0, 2, 1, 3]) for x in (self.q[i], self.k[i]))
        return paddle.matmul(q, k, transpose_y=True) * (size ** -0.5)

    def remove(self):
        for handle in self.handles:
            handle.remove()


def projection_layer(model, kind, student_layer):
    """The student-to-teacher-width projection for one student layer: TinyBERT's fit_dense(s)."""
    base = model.base_model
    return base.fit_denses[student_layer] if kind == "per_layer" else base.fit_dense


def projection_parameters(model, kind):
    base = model.base_model
    return list(base.fit_denses.parameters()) if kind == "per_layer" else list(base.fit_dense.parameters())


def head_logits(model, input_ids, token_type_ids, attention_mask=None):
    """The model's logits for its head. A token head reuses the *ForSequenceClassification classifier (a
    Linear(hidden, labels) in BERT, TinyBERT and MobileBERT) on every position's final hidden state instead of
    the pooled [CLS] state: one model class per family, saved and loaded alike, whatever the task type."""
    from utils.tasks import by_head
    if by_head(getattr(model.config, HEAD_KEY, "sequence")).PER_POSITION:
        hidden = model.base_model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                                  return_dict=False)[0]
        return model.classifier(model.dropout(hidden))
    return model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                 return_dict=True).logits


class _Logits(paddle.nn.Layer):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, token_type_ids):
        return head_logits(self.model, input_ids, token_type_ids)


class _SequenceLabels(paddle.nn.Layer):
    """A BERT sequence classifier's logits for teacher labelling: the last layer runs at the [CLS] position only,
    the one position its pooler reads (keys and values still come from every position). The same logits to
    float rounding, without the last layer's queries, output projection and feed-forward at every other position
    (about 1/7 of a 6-layer teacher's products on SST-2 sentences)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, token_type_ids):
        bert = self.model.bert
        mask = paddle.unsqueeze((input_ids == bert.pad_token_id).astype("float32") * -1e4, axis=[1, 2])
        hidden = bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        *layers, last = bert.encoder.layers
        for layer in layers:
            hidden = layer(hidden, mask)
        return self.model.classifier(bert.pooler(first_position(last, hidden, mask)))


def first_position(layer, hidden, mask):
    """A post-norm paddle.nn.TransformerEncoderLayer's output at position 0 only (inference: no dropout)."""
    query = hidden[:, :1]
    x = layer.norm1(query + layer.self_attn(query, hidden, hidden, mask))
    return layer.norm2(x + layer.linear2(layer.activation(layer.linear1(x))))


def cls_only_last_layer(model, head):
    """Whether _SequenceLabels computes this model's logits: a sequence head on PaddleNLP's BERT whose encoder
    layers are post-norm paddle.nn.TransformerEncoderLayers (TinyBERT's and MobileBERT's classes pool otherwise)."""
    from paddlenlp.transformers import BertForSequenceClassification
    if head != "sequence" or type(model) is not BertForSequenceClassification:
        return False
    encoder = model.bert.encoder  # a fused encoder (config.fuse) is a plain LayerList of other layers
    return isinstance(encoder, paddle.nn.TransformerEncoder) and encoder.norm is None and all(
        type(layer) is paddle.nn.TransformerEncoderLayer and not layer.normalize_before for layer in encoder.layers)


class BertAdapter(Adapter):
    arch = "bert"
    attention_parts = None  # Capture's default: BERT's self_attn.q_proj / k_proj

    def __init__(self, model, encoder, projection=None):
        super().__init__(model, encoder)
        self.projection = projection  # TinyBERT's fit_dense(s) kind, None for other models
        self.fit_size = getattr(model.config, "fit_size", None) if projection else None
        self._capture = None
        self.max_length = getattr(model.config, "max_position_embeddings", None)

    def forward(self, inputs, requests=()):
        ids = inputs["input_ids"]
        mask = (ids != self.encoder.pads["input_ids"]).astype("float32")
        if requests and self._capture is None:
            self._capture = Capture(self.model, attention=True, parts=self.attention_parts)
        logits = head_logits(self.model, ids, inputs["token_type_ids"], mask)
        features = []
        for feature, layer, proj in requests:
            x = self._capture.scores(layer) if feature == "attention" else self._capture.hidden[layer]
            if proj == "student":  # the student's own TinyBERT projection; other projections live in the distiller
                x = projection_layer(self.model, self.projection, layer)(x)
            features.append(x)
        return {"logits": logits, "mask": mask, "features": features}

    def drop_capture(self):
        """Remove the feature hooks (a traced teacher program computes the features itself)."""
        if self._capture is not None:
            self._capture.remove()
            self._capture = None

    @property
    def num_labels(self):
        return self.model.config.num_labels

    @property
    def head(self):
        return getattr(self.model.config, HEAD_KEY, "sequence")

    def part_of(self, name):
        if ".embeddings." in name:
            return "embeddings"
        layer = re.search(r"\.encoder\.layers?\.(\d+)\.", name)
        if layer:
            return int(layer.group(1)) + 1
        return "other" if ".fit_dense" in name else "head"  # TinyBERT's projections serve the matches

    def shape(self):
        c = self.model.config
        return {"layers": c.num_hidden_layers, "hidden": c.hidden_size, "heads": c.num_attention_heads}

    def flops(self, seq_len):
        return flops_per_example(self.model.config.to_dict(), seq_len)

    def set_label_info(self, info):
        self.model.config.update(info)

    def save(self, folder):
        setattr(self.model.config, ARCH_KEY, self.arch)
        if self.projection:
            self.model.config.distill_projection = self.projection
        self.model.save_pretrained(folder, safe_serialization=True)  # model.safetensors: no pickle to trust
        self.encoder.save(folder)

    @classmethod
    def load(cls, folder, num_labels=None, **label_info):
        from paddlenlp.transformers import AutoModelForSequenceClassification
        head = label_info.pop(HEAD_KEY, None)
        kwargs = dict(label_info, num_labels=num_labels) if num_labels else {}
        model = load_model(AutoModelForSequenceClassification, folder, **kwargs)
        if head:
            setattr(model.config, HEAD_KEY, head)
        return cls(model, BertEncoder(load_tokenizer(folder)), getattr(model.config, "distill_projection", None))

    def export_layer(self):
        return _Logits(self.model)

    def label_layer(self):
        return _SequenceLabels(self.model) if cls_only_last_layer(self.model, self.head) else _Logits(self.model)

    def with_labels(self, num_labels):
        config = type(self.model.config)(**dict(self.model.config.to_dict(), num_labels=num_labels))
        twin = type(self.model)(config)
        setattr(twin, self.model.base_model_prefix, self.model.base_model)  # one encoder, two classifiers
        return BertAdapter(twin, self.encoder, self.projection)


# ---- TinyBERT students

def student_shape(name, teacher_heads=12):
    """(layers, hidden, FFN, heads) of a TinyBERT name, an 'NL-HD' shape (e.g. 4l-384d), or a model folder.

    An 'NL-HD' shape has FFN 4H and the teacher's head count when it divides H (so attention maps pair up).
    """
    key = name.lower().removesuffix("-zh").removesuffix("-v2")
    if key in TINYBERT_SHAPES:
        return TINYBERT_SHAPES[key]
    match = SHAPE_PATTERN.match(name.lower())
    if match:
        layers, hidden = int(match.group(1)), int(match.group(2))
        heads = next(h for h in (teacher_heads, 12, 8, 4, 2, 1) if hidden % h == 0)
        return layers, hidden, 4 * hidden, heads
    if os.path.isfile(os.path.join(name, "config.json")):
        c = read_json(os.path.join(name, "config.json"), "a BERT-style config")
        keys = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads")
        if not all(isinstance(c.get(k), int) and c[k] > 0 for k in keys):
            raise UserError(f"expected positive integers {', '.join(keys)} (a BERT-style student)",
                            os.path.join(name, "config.json"))
        return tuple(c[k] for k in keys)
    raise UserError(f"unknown student '{name}'; expected bilstm, cnn, bow, {', '.join(TINYBERT_SHAPES)} "
                    "(optionally -v2/-zh), a shape like 4l-312d, or a model folder")


def default_projection(source, config):
    """The projection the checkpoint was trained with: its recorded choice, else -v2 names per-layer."""
    recorded = getattr(config, "distill_projection", None)
    if recorded in PROJECTION_LAYOUTS:
        return recorded
    return "per_layer" if "-v2" in os.path.basename(os.path.normpath(source)).lower() else "shared"


def _has_projection_weights(folder, kind):
    keys = load_model_state(folder).keys()
    wanted = "fit_denses.0.weight" if kind == "per_layer" else "fit_dense.weight"
    return any(k.endswith(wanted) for k in keys)


def _checkpoint_fit_size(source):
    path = os.path.join(source, "config.json")
    if not os.path.isfile(path):
        return None  # a PaddleNLP name: its built-in config projects to 768
    return read_json(path, "the model's config").get("fit_size", 768)


def _config_from_teacher(teacher, shape, num_labels):
    from paddlenlp.transformers import TinyBertConfig
    t = teacher.config
    layers, hidden, ffn, heads = shape
    return TinyBertConfig(vocab_size=t.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                          num_attention_heads=heads, intermediate_size=ffn, hidden_act=t.hidden_act,
                          max_position_embeddings=t.max_position_embeddings, type_vocab_size=t.type_vocab_size,
                          pad_token_id=t.pad_token_id, fit_size=t.hidden_size, num_labels=num_labels)


def copy_from_teacher(student, teacher, layer_map):
    """DistilBERT-style init: embeddings and each student layer from its mapped teacher layer."""
    s_base, t_base = student.base_model, teacher.base_model
    s_base.embeddings.set_state_dict(t_base.embeddings.state_dict())
    for m, g in layer_map:
        if m > 0:
            s_base.encoder.layers[m - 1].set_state_dict(t_base.encoder.layers[g - 1].state_dict())


def _pretrained_student(source, teacher, num_labels, projection, intermediate):
    from paddlenlp.transformers import TinyBertForSequenceClassification
    fit_size = teacher.model.config.hidden_size
    kind = model_kind(source)
    student = load_model(TinyBertForSequenceClassification, source, num_labels=num_labels, fit_size=fit_size,
                         ignore_mismatched_sizes=True)
    tokenizer = load_tokenizer(source)
    trained_fit = _checkpoint_fit_size(source)
    if intermediate and trained_fit not in (None, fit_size):
        print(f"note: {source} projects to width {trained_fit}, the teacher is {fit_size} wide: "
              "the projection starts fresh")
    encoder = BertEncoder(tokenizer)
    if encoder.signature() != teacher.encoder.signature():
        raise UserError(f"the student's vocabulary ({len(tokenizer.get_vocab())} tokens) differs from the "
                        f"teacher's ({len(teacher.encoder.tokenizer.get_vocab())}); a TinyBERT student must share "
                        "the teacher's tokenizer", source)
    projection = projection or default_projection(source, student.config)
    if intermediate and kind == "paddle" and not _has_projection_weights(source, projection):
        raise UserError(f"no {projection} projection weights (TinyBERT's "
                        f"{'fit_denses' if projection == 'per_layer' else 'fit_dense'}) in this folder; "
                        "expected a TinyBERT checkpoint or a task_distill.py output, or pass --projection "
                        "to choose the other kind, or --student_init random", source)
    return BertAdapter(student, teacher.encoder, projection)


def tinybert_student(source, init, teacher, num_labels, layer_map_fn, projection=None, intermediate=True):
    """A TinyBERT student adapter sharing the teacher's encoder. layer_map_fn(student_layers) gives the map for
    `teacher` init."""
    from paddlenlp.transformers import TinyBertForSequenceClassification
    if init == "pretrained":
        return _pretrained_student(source, teacher, num_labels, projection, intermediate)
    shape = student_shape(source, teacher.model.config.num_attention_heads)
    student = TinyBertForSequenceClassification(_config_from_teacher(teacher.model, shape, num_labels))
    if init == "teacher":
        t = teacher.model.config
        if (shape[1], shape[2], shape[3]) != (t.hidden_size, t.intermediate_size, t.num_attention_heads):
            raise UserError(f"--student_init teacher needs the teacher's width: student {source} has hidden "
                            f"{shape[1]}, FFN {shape[2]}, heads {shape[3]}; the teacher has {t.hidden_size}, "
                            f"{t.intermediate_size}, {t.num_attention_heads}")
        copy_from_teacher(student, teacher.model, layer_map_fn(shape[0]))
    return BertAdapter(student, teacher.encoder, projection or "shared")
