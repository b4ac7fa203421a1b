"""Distillation configs: what is compared (intermediate matches), with which loss, weight, temperature and
schedule. Every name is looked up in a map and checked when the config is built, so a typo fails before
training with the list of valid names, and adding a loss, projection, schedule or preset is one map entry.

A config (JSON file or built from task_distill.py's flags):
    {"temperature": 4.0, "temperature_schedule": "constant" | {"name": "flsw", "beta": 1, "gamma": 2},
     "t2_scaling": true, "kd_loss": "soft_ce", "kd_weight": 1.0, "kd_weight_schedule": "constant",
     "hard_label_weight": 0.0, "hard_weight_schedule": "constant",
     "intermediate_matches": [{"preset": "pkd", "k": 3},
                              {"layer_T": 6, "layer_S": 4, "feature": "hidden", "loss": "cos", "weight": 1,
                               "proj": ["linear", 312, 384], "teacher": 0}]}
Layers count from 0 (the embedding output); "attention" means layer i's pre-softmax scores (i >= 1). "proj":
null (widths must match), "student" (the TinyBERT student's own fit_dense(s), see --projection), or
[linear|relu|tanh, dim_S, dim_T] (a new trained layer, kept in the checkpoint, not in the exported model).
"""
import copy

import paddle

from utils.errors import UserError
from utils.files import read_json
from utils.losses import INTERMEDIATE_LOSSES, PREDICTION_LOSSES
from utils.schedules import TEMPERATURE_SCHEDULES, WEIGHT_SCHEDULES

FEATURES = ("embedding", "hidden", "attention")
ATTENTION_LOSSES = ("attention_mse", "attention_ce")
WIDTH_FREE_LOSSES = ("nst", "mmd")  # compare token-by-token similarities: any widths


def _projection(activation):
    def build(dim_S, dim_T):
        layers = [paddle.nn.Linear(dim_S, dim_T)] + ([activation()] if activation else [])
        return paddle.nn.Sequential(*layers)
    return build


PROJECTIONS = {"linear": _projection(None), "relu": _projection(paddle.nn.ReLU), "tanh": _projection(paddle.nn.Tanh)}


# ---- presets: functions of the student's and the teacher's shapes, never typed-out lists

def _proj(S, T, teacher):
    """The student's built-in TinyBERT projection when it fits this teacher, else a new linear layer."""
    if S.get("fit_size") == T["hidden"] and teacher == 0 and S.get("projection"):
        return "student"
    return None if S["hidden"] == T["hidden"] else ["linear", S["hidden"], T["hidden"]]


def uniform_pairs(n_S, n_T):
    """Student layer m <- teacher layer floor(m * N_T / N_S), for m = 1..N_S."""
    return [(m, m * n_T // n_S) for m in range(1, n_S + 1)]


def tinybert_preset(S, T, teacher=0, layer_map=None, emb_weight=1.0, hidden_weight=1.0, attn_weight=1.0):
    """Embeddings, every layer's hidden states (MSE through a projection) and attention scores (MSE)."""
    pairs = layer_map or uniform_pairs(S["layers"], T["layers"])
    proj = _proj(S, T, teacher)
    matches = []
    if emb_weight:
        matches.append(dict(layer_S=0, layer_T=0, feature="embedding", loss="hidden_mse", weight=emb_weight,
                            proj=proj, group="emb_loss"))
    for m, g in pairs:
        if hidden_weight:
            matches.append(dict(layer_S=m, layer_T=g, feature="hidden", loss="hidden_mse", weight=hidden_weight,
                                proj=proj, group="hidden_loss"))
        if attn_weight:
            matches.append(dict(layer_S=m, layer_T=g, feature="attention", loss="attention_mse", weight=attn_weight,
                                proj=None, group="attn_loss"))
    return [dict(m, teacher=teacher) for m in matches]


def pkd_preset(S, T, teacher=0, strategy="skip", k=None, weight=100.0):
    """Patient KD: normalised [CLS] states of student layers 1..k (default N_S - 1; the last layer is left to
    the prediction loss) against teacher layers every N_T/N_S ("skip") or the k before the last ("last")."""
    k = S["layers"] - 1 if k is None else k
    if strategy == "skip":
        layers_T = [m * T["layers"] // S["layers"] for m in range(1, k + 1)]
    elif strategy == "last":
        layers_T = list(range(T["layers"] - k, T["layers"]))
    else:
        raise UserError(f"pkd preset: strategy '{strategy}' is not one of skip, last")
    return [dict(layer_S=m, layer_T=g, feature="hidden", loss="pkd", weight=weight, proj=_proj(S, T, teacher),
                 teacher=teacher) for m, g in zip(range(1, k + 1), layers_T)]


def distilbert_preset(S, T, teacher=0, weight=1.0):
    """Cosine alignment of hidden states at the uniformly mapped layers (DistilBERT aligns the last)."""
    return [dict(layer_S=m, layer_T=g, feature="hidden", loss="cos", weight=weight, proj=_proj(S, T, teacher),
                 teacher=teacher) for m, g in uniform_pairs(S["layers"], T["layers"])]


def minilm_preset(S, T, teacher=0, weight=1.0):
    """MiniLM-style: the last layer's attention distributions (cross-entropy over real keys)."""
    return [dict(layer_S=S["layers"], layer_T=T["layers"], feature="attention", loss="attention_ce", weight=weight,
                 proj=None, teacher=teacher)]


PRESETS = {"tinybert": tinybert_preset, "pkd": pkd_preset, "distilbert": distilbert_preset, "minilm": minilm_preset}

DEFAULTS = {"temperature": 1.0, "temperature_schedule": "constant", "t2_scaling": True, "kd_loss": "soft_ce",
            "kd_weight": 1.0, "kd_weight_schedule": "constant", "hard_label_weight": 0.0,
            "hard_weight_schedule": "constant", "intermediate_matches": []}
MATCH_KEYS = {"layer_S", "layer_T", "feature", "loss", "weight", "proj", "teacher", "group", "name"}


def _number(value):
    """A finite int or float (not a bool, a string, NaN or infinity: JSON allows NaN and Infinity)."""
    import math
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pick(value, table, what):
    if value not in table:
        raise UserError(f"{what} '{value}' is not one of: {', '.join(table)}")
    return value


def _schedule(spec, table, what):
    """'name' or {"name": ..., params}: validated by building it once."""
    if not isinstance(spec, (str, dict)):
        raise UserError(f"{what} must be a name or an object with \"name\", got {spec!r}")
    if isinstance(spec, dict) and not all(_number(v) for k, v in spec.items() if k != "name"):
        raise UserError(f"{what}: parameters must be finite numbers, got {spec!r}")
    name, params = (spec, {}) if isinstance(spec, str) else (spec.get("name"), {k: v for k, v in spec.items()
                                                                               if k != "name"})
    _pick(name, table, what)
    if table is TEMPERATURE_SCHEDULES:
        try:
            table[name](**params)
        except TypeError as err:
            raise UserError(f"{what} '{name}': {err}") from None
    elif params:
        raise UserError(f"{what} '{name}' takes no parameters")
    return {"name": name, **params}


def _check_match(i, m, S, teachers):
    where = f"intermediate_matches[{i}]"
    unknown = set(m) - MATCH_KEYS
    if unknown:
        raise UserError(f"{where}: unknown key '{sorted(unknown)[0]}'; expected: {', '.join(sorted(MATCH_KEYS))}")
    m = dict({"weight": 1.0, "proj": None, "teacher": 0}, **m)
    for key in ("layer_S", "layer_T", "feature", "loss"):
        if key not in m:
            raise UserError(f"{where}: '{key}' is missing")
    _pick(m["feature"], FEATURES, f"{where}: feature")
    _pick(m["loss"], INTERMEDIATE_LOSSES, f"{where}: loss")
    if not isinstance(m["teacher"], int) or not 0 <= m["teacher"] < len(teachers):
        raise UserError(f"{where}: teacher {m['teacher']} does not exist (there are {len(teachers)})")
    T = teachers[m["teacher"]]
    low = 1 if m["feature"] == "attention" else 0
    for side, info in (("layer_S", S), ("layer_T", T)):
        high = 0 if m["feature"] == "embedding" else info["layers"]
        if not isinstance(m[side], int) or not low <= m[side] <= high:
            raise UserError(f"{where}: {side} {m[side]} is out of range for {m['feature']} ({low}..{high})")
    attention = m["feature"] == "attention"
    if attention != (m["loss"] in ATTENTION_LOSSES):
        raise UserError(f"{where}: loss '{m['loss']}' does not apply to {m['feature']} "
                        f"(attention takes {' or '.join(ATTENTION_LOSSES)})")
    if not _number(m["weight"]) or m["weight"] < 0:
        raise UserError(f"{where}: weight must be a finite number >= 0, got {m['weight']!r}")
    proj = m["proj"]
    if attention and proj is not None:
        raise UserError(f"{where}: attention scores take no projection")
    if isinstance(proj, list):
        if len(proj) != 3:
            raise UserError(f"{where}: proj must be [kind, dim_S, dim_T]")
        _pick(proj[0], PROJECTIONS, f"{where}: proj kind")
        if (proj[1], proj[2]) != (S["hidden"], T["hidden"]):
            raise UserError(f"{where}: proj dims {proj[1]}->{proj[2]} do not match student width {S['hidden']} "
                            f"and teacher width {T['hidden']}")
    elif proj == "student":
        if not S.get("projection") or S.get("fit_size") != T["hidden"]:
            raise UserError(f"{where}: proj 'student' needs a TinyBERT student projecting to the teacher's width")
    elif proj is not None:
        raise UserError(f"{where}: proj must be null, \"student\" or [kind, dim_S, dim_T]")
    elif not attention and S["hidden"] != T["hidden"] and m["loss"] not in WIDTH_FREE_LOSSES:
        raise UserError(f"{where}: widths differ (student {S['hidden']}, teacher {T['hidden']}); add "
                        f"\"proj\": [\"linear\", {S['hidden']}, {T['hidden']}]")
    m.setdefault("name", f"{'t%d_' % m['teacher'] if m['teacher'] else ''}{m['feature']}{m['layer_S']}_{m['loss']}")
    return m


def build_config(raw, S, teachers, regression=False):
    """The resolved config: defaults filled, presets expanded, every name and range checked.

    S: the student's {"layers", "hidden", "heads", "projection", "fit_size"}; teachers: their {"layers",
    "hidden", "heads"}, in --teacher_path order.
    """
    unknown = set(raw) - set(DEFAULTS)
    if unknown:
        raise UserError(f"unknown config key '{sorted(unknown)[0]}'; expected: {', '.join(DEFAULTS)}")
    config = dict(copy.deepcopy(DEFAULTS), **copy.deepcopy(raw))
    if not _number(config["temperature"]) or config["temperature"] <= 0:
        raise UserError(f"temperature must be a positive number, got {config['temperature']!r}")
    config["temperature"] = float(config["temperature"])
    config["temperature_schedule"] = _schedule(config["temperature_schedule"], TEMPERATURE_SCHEDULES,
                                               "temperature_schedule")
    _pick(config["kd_loss"], PREDICTION_LOSSES, "kd_loss")
    if regression and config["kd_loss"] != "mse" and config["kd_weight"]:
        raise UserError(f"kd_loss '{config['kd_loss']}' needs class probabilities; a regression task takes 'mse'")
    for key in ("kd_weight_schedule", "hard_weight_schedule"):
        config[key] = _schedule(config[key], WEIGHT_SCHEDULES, key)["name"]
    for key in ("kd_weight", "hard_label_weight"):
        if not _number(config[key]) or config[key] < 0:
            raise UserError(f"{key} must be a finite number >= 0, got {config[key]!r}")
    if not isinstance(config["t2_scaling"], bool):
        raise UserError(f"t2_scaling must be true or false, got {config['t2_scaling']!r}")
    if not isinstance(config["intermediate_matches"], list):
        raise UserError(f"intermediate_matches must be a list of matches, got {config['intermediate_matches']!r}")
    if config["intermediate_matches"] and S.get("layers") is None:
        raise UserError("intermediate_matches need a student with transformer layers; this student learns from the "
                        "teacher's predictions only (use kd_weight / hard_label_weight)")
    matches = []
    for i, item in enumerate(config["intermediate_matches"]):
        if not isinstance(item, dict):
            raise UserError(f"intermediate_matches[{i}]: expected an object")
        if "preset" in item:
            params = {k: v for k, v in item.items() if k != "preset"}
            builder = PRESETS[_pick(item["preset"], PRESETS, f"intermediate_matches[{i}]: preset")]
            teacher = params.get("teacher", 0)
            if not isinstance(teacher, int) or not 0 <= teacher < len(teachers):
                raise UserError(f"intermediate_matches[{i}]: teacher {teacher} does not exist")
            try:
                matches += builder(S, teachers[teacher], **params)
            except TypeError as err:
                raise UserError(f"intermediate_matches[{i}]: preset '{item['preset']}': {err}") from None
        else:
            matches.append(item)
    config["intermediate_matches"] = [_check_match(i, m, S, teachers) for i, m in enumerate(matches)]
    if not config["intermediate_matches"] and not config["kd_weight"] and not config["hard_label_weight"]:
        raise UserError("the config trains nothing: no intermediate matches and kd_weight = hard_label_weight = 0")
    return config


def load_config_file(path):
    return read_json(path, "a distillation config (a JSON object of config keys)")
