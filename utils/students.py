"""Building the student: a TinyBERT checkpoint, a fresh model of a named shape, or layers copied from the teacher."""
import json
import os
import re

from utils.errors import UserError
from utils.models import load_model, load_tokenizer, model_kind

# (layers, hidden, FFN, heads); the -v2 and -zh checkpoints share their base shape.
TINYBERT_SHAPES = {"tinybert-4l-312d": (4, 312, 1200, 12), "tinybert-6l-768d": (6, 768, 3072, 12)}
SHAPE_PATTERN = re.compile(r"^(\d+)l-(\d+)d$")
STUDENT_INITS = ("pretrained", "random", "teacher")
PROJECTIONS = ("per_layer", "shared")


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
        with open(os.path.join(name, "config.json"), encoding="utf-8") as f:
            c = json.load(f)
        return c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"], c["num_attention_heads"]
    raise UserError(f"unknown student shape '{name}'; expected {', '.join(TINYBERT_SHAPES)} (optionally -v2/-zh), "
                    "a shape like 4l-312d, or a model folder")


def default_projection(source, config):
    """The projection the checkpoint was trained with: its recorded choice, else -v2 names per-layer."""
    recorded = getattr(config, "distill_projection", None)
    if recorded in PROJECTIONS:
        return recorded
    return "per_layer" if "-v2" in os.path.basename(os.path.normpath(source)).lower() else "shared"


def _has_projection_weights(folder, kind):
    import paddle
    keys = paddle.load(os.path.join(folder, "model_state.pdparams"), return_numpy=True).keys()
    wanted = "fit_denses.0.weight" if kind == "per_layer" else "fit_dense.weight"
    return any(k.endswith(wanted) for k in keys)


def _checkpoint_fit_size(source):
    path = os.path.join(source, "config.json")
    if not os.path.isfile(path):
        return None  # a PaddleNLP name: its built-in config projects to 768
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("fit_size", 768)


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


def build_student(source, init, teacher, teacher_tokenizer, num_labels, layer_map_fn, projection=None,
                  intermediate=True):
    """(student, tokenizer, projection kind). layer_map_fn(student_layers) gives the map for `teacher` init."""
    from paddlenlp.transformers import TinyBertForSequenceClassification
    fit_size = teacher.config.hidden_size
    if init == "pretrained":
        kind = model_kind(source)
        student = load_model(TinyBertForSequenceClassification, source, num_labels=num_labels, fit_size=fit_size,
                             ignore_mismatched_sizes=True)
        tokenizer = load_tokenizer(source)
        trained_fit = _checkpoint_fit_size(source)
        if intermediate and trained_fit not in (None, fit_size):
            print(f"note: {source} projects to width {trained_fit}, the teacher is {fit_size} wide: "
                  "the projection starts fresh")
        if tokenizer.get_vocab() != teacher_tokenizer.get_vocab():
            raise UserError(f"the student's vocabulary ({len(tokenizer.get_vocab())} tokens) differs from the "
                            f"teacher's ({len(teacher_tokenizer.get_vocab())}); both must share one tokenizer",
                            source)
        projection = projection or default_projection(source, student.config)
        if intermediate and kind == "paddle" and not _has_projection_weights(source, projection):
            raise UserError(f"no {projection} projection weights (TinyBERT's "
                            f"{'fit_denses' if projection == 'per_layer' else 'fit_dense'}) in this folder; "
                            "expected a TinyBERT checkpoint or a task_distill.py output, or pass --projection "
                            "to choose the other kind, or --student_init random", source)
    else:
        shape = student_shape(source, teacher.config.num_attention_heads)
        student = TinyBertForSequenceClassification(_config_from_teacher(teacher, shape, num_labels))
        tokenizer = teacher_tokenizer
        projection = projection or "shared"
        if init == "teacher":
            t = teacher.config
            if (shape[1], shape[2], shape[3]) != (t.hidden_size, t.intermediate_size, t.num_attention_heads):
                raise UserError(f"--student_init teacher needs the teacher's width: student {source} has hidden "
                                f"{shape[1]}, FFN {shape[2]}, heads {shape[3]}; the teacher has {t.hidden_size}, "
                                f"{t.intermediate_size}, {t.num_attention_heads}")
            copy_from_teacher(student, teacher, layer_map_fn(shape[0]))
    student.config.distill_projection = projection
    return student, tokenizer, projection
