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
import re

import paddle

from utils.errors import UserError
from utils.files import read_json
from utils.intermediate import uniform_layer_map
from utils.losses import INTERMEDIATE_LOSSES, PREDICTION_LOSSES
from utils.schedules import TEMPERATURE_SCHEDULES, WEIGHT_SCHEDULES

FEATURES = ("embedding", "hidden", "attention")
ATTENTION_LOSSES = ("attention_mse", "attention_ce", "attention_kl")
WIDTH_FREE_LOSSES = ("nst", "mmd", "mean_variance")  # token similarities or per-token statistics: any widths


def _projection(activation):
    def build(dim_S, dim_T):
        layers = [paddle.nn.Linear(dim_S, dim_T)] + ([activation()] if activation else [])
        return paddle.nn.Sequential(*layers)
    return build


PROJECTION_KINDS = {"linear": _projection(None), "relu": _projection(paddle.nn.ReLU),
                    "tanh": _projection(paddle.nn.Tanh)}


# ---- presets: functions of the student's and the teacher's shapes, never typed-out lists

def _proj(shape_S, shape_T, teacher):
    """The student's built-in TinyBERT projection when it fits this teacher, else a new linear layer."""
    if shape_S.get("fit_size") == shape_T["hidden"] and teacher == 0 and shape_S.get("projection"):
        return "student"
    return None if shape_S["hidden"] == shape_T["hidden"] else ["linear", shape_S["hidden"], shape_T["hidden"]]


def layer_pairs(layer_map, shape_S, shape_T):
    """A config's layer_map checked: [[student layer, teacher layer], ...], integers within both models' layers
    (a string such as "3,6" or a flat list would otherwise fail deep inside, unpacking pairs)."""
    n_S, n_T = shape_S["layers"], shape_T["layers"]
    example = f" (e.g. {[list(p) for p in uniform_layer_map(n_S, n_T)[1:]]})" if n_S <= n_T else ""
    expected = (f"expected a list of [student layer, teacher layer] pairs of integers, student 1..{n_S}, teacher "
                f"1..{n_T}{example}, got {layer_map!r}")
    if not isinstance(layer_map, list) or not layer_map:
        raise UserError(f"layer_map: {expected}")
    for pair in layer_map:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                  for x in pair)):
            raise UserError(f"layer_map: {pair!r} is not a pair of integers; {expected}")
        if not (1 <= pair[0] <= n_S and 1 <= pair[1] <= n_T):
            raise UserError(f"layer_map: {pair!r} is out of range (student layers 1..{n_S}, teacher layers "
                            f"1..{n_T}); {expected}")
    return [tuple(p) for p in layer_map]


def tinybert_preset(shape_S, shape_T, teacher=0, layer_map=None, emb_weight=1.0, hidden_weight=1.0, attn_weight=1.0):
    """Embeddings, every layer's hidden states (MSE through a projection) and attention scores (MSE)."""
    pairs = (uniform_layer_map(shape_S["layers"], shape_T["layers"])[1:] if layer_map is None
             else layer_pairs(layer_map, shape_S, shape_T))
    proj = _proj(shape_S, shape_T, teacher)
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


def pkd_preset(shape_S, shape_T, teacher=0, strategy="skip", k=None, weight=100.0):
    """Patient KD: normalised [CLS] states of student layers 1..k (default N_S - 1; the last layer is left to
    the prediction loss) against teacher layers every N_T/N_S ("skip") or the k before the last ("last")."""
    k = shape_S["layers"] - 1 if k is None else k
    if strategy == "skip":
        layers_T = [m * shape_T["layers"] // shape_S["layers"] for m in range(1, k + 1)]
    elif strategy == "last":
        layers_T = list(range(shape_T["layers"] - k, shape_T["layers"]))
    else:
        raise UserError(f"strategy '{strategy}' is not one of skip, last")
    return [dict(layer_S=m, layer_T=g, feature="hidden", loss="pkd", weight=weight,
                 proj=_proj(shape_S, shape_T, teacher), teacher=teacher) for m, g in zip(range(1, k + 1), layers_T)]


def distilbert_preset(shape_S, shape_T, teacher=0, weight=1.0):
    """Cosine alignment of hidden states at the uniformly mapped layers (DistilBERT aligns the last)."""
    return [dict(layer_S=m, layer_T=g, feature="hidden", loss="cos", weight=weight,
                 proj=_proj(shape_S, shape_T, teacher), teacher=teacher)
            for m, g in uniform_layer_map(shape_S["layers"], shape_T["layers"])[1:]]


def minilm_preset(shape_S, shape_T, teacher=0, weight=1.0):
    """MiniLM-style: the last layer's attention distributions (cross-entropy over real keys)."""
    return [dict(layer_S=shape_S["layers"], layer_T=shape_T["layers"], feature="attention", loss="attention_ce",
                 weight=weight, proj=None, teacher=teacher)]


PRESETS = {"tinybert": tinybert_preset, "pkd": pkd_preset, "distilbert": distilbert_preset, "minilm": minilm_preset}

DEFAULTS = {"temperature": 1.0, "temperature_schedule": "constant", "t2_scaling": True, "kd_loss": "soft_ce",
            "kd_weight": 1.0, "kd_weight_schedule": "constant", "hard_label_weight": 0.0,
            "hard_weight_schedule": "constant", "intermediate_matches": [], "phases": None}
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


def _check_match(i, m, shape_S, teachers):
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
    shape_T = teachers[m["teacher"]]
    low = 1 if m["feature"] == "attention" else 0
    for side, info in (("layer_S", shape_S), ("layer_T", shape_T)):
        high = 0 if m["feature"] == "embedding" else info["layers"]
        if not isinstance(m[side], int) or not low <= m[side] <= high:
            raise UserError(f"{where}: {side} {m[side]} is out of range for {m['feature']} ({low}..{high})")
    attention = m["feature"] == "attention"
    if attention != (m["loss"] in ATTENTION_LOSSES):
        raise UserError(f"{where}: loss '{m['loss']}' does not apply to {m['feature']} "
                        f"(attention takes {' or '.join(ATTENTION_LOSSES)})")
    heads_S, heads_T = shape_S.get("heads"), shape_T.get("heads")
    if m["loss"] == "attention_kl" and heads_S and heads_T and heads_T % heads_S:
        raise UserError(f"{where}: attention_kl needs the teacher's heads ({shape_T['heads']}) to be a multiple of the "
                        f"student's ({shape_S['heads']}): teacher heads are averaged in groups")
    if not _number(m["weight"]) or m["weight"] < 0:
        raise UserError(f"{where}: weight must be a finite number >= 0, got {m['weight']!r}")
    proj = m["proj"]
    if attention and proj is not None:
        raise UserError(f"{where}: attention scores take no projection")
    if isinstance(proj, list):
        if len(proj) != 3:
            raise UserError(f"{where}: proj must be [kind, dim_S, dim_T]")
        _pick(proj[0], PROJECTION_KINDS, f"{where}: proj kind")
        if (proj[1], proj[2]) != (shape_S["hidden"], shape_T["hidden"]):
            raise UserError(f"{where}: proj dims {proj[1]}->{proj[2]} do not match student width {shape_S['hidden']} "
                            f"and teacher width {shape_T['hidden']}")
    elif proj == "student":
        if not shape_S.get("projection") or shape_S.get("fit_size") != shape_T["hidden"]:
            raise UserError(f"{where}: proj 'student' needs a TinyBERT student projecting to the teacher's width")
    elif proj is not None:
        raise UserError(f"{where}: proj must be null, \"student\" or [kind, dim_S, dim_T]")
    elif not attention and shape_S["hidden"] != shape_T["hidden"] and m["loss"] not in WIDTH_FREE_LOSSES:
        raise UserError(f"{where}: widths differ (student {shape_S['hidden']}, teacher {shape_T['hidden']}); add "
                        f"\"proj\": [\"linear\", {shape_S['hidden']}, {shape_T['hidden']}]")
    m.setdefault("name", f"{'t%d_' % m['teacher'] if m['teacher'] else ''}{m['feature']}{m['layer_S']}_{m['loss']}")
    return m


def resolve_config(raw, student, teachers, regression=False, source=None):
    """build_config for a student adapter and teacher adapters; an error in a config file names it (source)."""
    shape_S = dict(student.shape(), projection=student.projection, fit_size=student.fit_size)
    try:
        return build_config(raw, shape_S, [t.shape() for t in teachers], regression)
    except UserError as err:
        raise UserError(str(err), source) if source else err from None


def build_config(raw, shape_S, teachers, regression=False):
    """The resolved config: defaults filled, presets expanded, every name and range checked.

    shape_S: the student's {"layers", "hidden", "heads", "projection", "fit_size"}; teachers: their {"layers",
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
    if config["intermediate_matches"] and shape_S.get("layers") is None:
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
                matches += builder(shape_S, teachers[teacher], **params)
            except (TypeError, UserError) as err:  # an unknown or malformed parameter, named with its match
                raise UserError(f"intermediate_matches[{i}]: preset '{item['preset']}': {err}") from None
        else:
            matches.append(item)
    phases = config["phases"]
    if isinstance(phases, (str, dict)):  # a phase preset may add matches of its own (progressive)
        name, params = (phases, {}) if isinstance(phases, str) else (phases.get("preset"), {
            k: v for k, v in phases.items() if k != "preset"})
        builder = PHASE_PRESETS[_pick(name, PHASE_PRESETS, "phases: preset")]
        if not all(_number(v) or isinstance(v, bool) for v in params.values()):
            raise UserError(f"phases: preset parameters must be numbers, got {params!r}")
        if shape_S.get("layers") is None:
            raise UserError(f"phases: preset '{name}' needs a student with transformer layers")
        try:
            more, phases = builder(shape_S, teachers[0], len(matches), config, **params)
        except TypeError as err:
            raise UserError(f"phases: preset '{name}': {err}") from None
        matches = matches + more
    config["intermediate_matches"] = [_check_match(i, m, shape_S, teachers) for i, m in enumerate(matches)]
    if not config["intermediate_matches"] and not config["kd_weight"] and not config["hard_label_weight"]:
        raise UserError("the config trains nothing: no intermediate matches and kd_weight = hard_label_weight = 0")
    config["phases"] = _check_phases(phases, config, shape_S.get("layers"))
    return config


# ---- phases: a run as a list of phases, each with its matches, prediction weights, trainable layers, selection

PHASE_KEYS = {"name", "matches", "kd_weight", "hard_label_weight", "select", "share", "lr"}
SELECTIONS = ("inter_loss", "metric", "last")
LR_KEYS = {"embeddings", "layers", "head", "other"}


def single_phase(config):
    """The phase of a config without "phases": everything it names, for the whole run."""
    inter = not (config["kd_weight"] or config["hard_label_weight"])
    return [dict(name="intermediate" if inter else "prediction", matches="all", kd_weight=config["kd_weight"],
                 hard_label_weight=config["hard_label_weight"], select="inter_loss" if inter else "metric",
                 share=1.0)]


def tinybert_phases(shape_S, shape_T, first, config, inter_share=0.5):
    """TinyBERT's two stages in one run: every intermediate match (best by dev intermediate loss, and the next
    phase starts from that model), then the prediction layer alone (best by the dev metric)."""
    if not 0 < inter_share < 1:
        raise UserError(f"phases: tinybert inter_share must be in (0, 1), got {inter_share}")
    return [], [dict(name="intermediate", matches="all", kd_weight=0.0, hard_label_weight=0.0, select="inter_loss",
                     share=inter_share),
                dict(name="prediction", matches=[], kd_weight=config["kd_weight"],
                     hard_label_weight=config["hard_label_weight"], select="metric", share=1 - inter_share)]


def progressive_phases(shape_S, shape_T, first, config, before=0.0, during=3.0, after=0.3, layer_share=0.5,
                       attention=True, mean_variance=0.0, prediction=True):
    """MobileBERT's progressive knowledge transfer: one phase per student layer l, with only layer l's feature-map
    (and attention) transfer on (the embeddings join layer 1's phase); layers already trained learn at `after`
    x the learning rate, layer l at `during` x, layers above and the classifier at `before` x (0: frozen). Then
    a prediction phase with every parameter training. Its matches (teacher layers mapped uniformly) are added
    after the config's own intermediate_matches, which none of these phases uses (write the phases out to use
    them). prediction false (general distillation, no labels): the layer phases share the whole run."""
    layer_share = layer_share if prediction else 1.0
    if prediction and not 0 < layer_share < 1:
        raise UserError(f"phases: progressive layer_share must be in (0, 1), got {layer_share}")
    proj = _proj(shape_S, shape_T, 0)
    matches, phases = [], []
    for m, g in uniform_layer_map(shape_S["layers"], shape_T["layers"])[1:]:
        mine = ([dict(layer_S=0, layer_T=0, feature="embedding", loss="feature_map", proj=proj, group="emb_loss")]
                if m == 1 else [])
        mine.append(dict(layer_S=m, layer_T=g, feature="hidden", loss="feature_map", proj=proj, group="hidden_loss"))
        if mean_variance:
            mine.append(dict(layer_S=m, layer_T=g, feature="hidden", loss="mean_variance", weight=mean_variance,
                             group="mean_variance_loss"))
        if attention:
            mine.append(dict(layer_S=m, layer_T=g, feature="attention", loss="attention_kl", group="attn_loss"))
        index = list(range(first + len(matches), first + len(matches) + len(mine)))
        matches += mine
        layers = [after if j < m else during if j == m else before for j in range(1, shape_S["layers"] + 1)]
        phases.append(dict(name=f"layer{m}", matches=index, kd_weight=0.0, hard_label_weight=0.0, select="last",
                           share=layer_share / shape_S["layers"], lr={"embeddings": during if m == 1 else after,
                                                                "layers": layers, "head": before}))
    if prediction:
        phases.append(dict(name="prediction", matches=[], kd_weight=config["kd_weight"],
                           hard_label_weight=config["hard_label_weight"], select="metric", share=1 - layer_share))
    return matches, phases


PHASE_PRESETS = {"tinybert": tinybert_phases, "progressive": progressive_phases}


def _check_lr(where, lr, layers):
    if not isinstance(lr, dict) or set(lr) - LR_KEYS:
        raise UserError(f"{where}: lr must be an object with keys from {', '.join(sorted(LR_KEYS))}, got {lr!r}")
    for key, value in lr.items():
        values = value if key == "layers" and isinstance(value, list) else [value]
        if not all(_number(v) and v >= 0 for v in values):
            raise UserError(f"{where}: lr {key} must be multipliers >= 0, got {value!r}")
        if key == "layers" and layers is None:
            raise UserError(f"{where}: lr layers: this student has no transformer layers")
        if key == "layers" and isinstance(value, list) and len(value) != layers:
            raise UserError(f"{where}: lr layers lists {len(value)} multipliers; the student has {layers} layers")


def _check_phases(phases, config, layers):
    """Every phase complete and valid: matches as indices, weights, selection, share of the run, lr multipliers."""
    if phases is None:
        phases = single_phase(config)
    if not isinstance(phases, list) or not phases:
        raise UserError(f"phases must be a preset name or a non-empty list of phases, got {phases!r}")
    n, out = len(config["intermediate_matches"]), []
    for i, phase in enumerate(phases):
        where = f"phases[{i}]"
        if not isinstance(phase, dict) or set(phase) - PHASE_KEYS:
            raise UserError(f"{where}: expected an object with keys from {', '.join(sorted(PHASE_KEYS))}")
        p = dict({"name": f"phase{i + 1}", "matches": "all", "kd_weight": 0.0, "hard_label_weight": 0.0,
                  "share": 1.0 / len(phases), "lr": {}}, **phase)
        if p["matches"] == "all":
            p["matches"] = list(range(n))
        if not isinstance(p["matches"], list) or not all(isinstance(j, int) and 0 <= j < n for j in p["matches"]):
            raise UserError(f"{where}: matches must be \"all\" or indices into intermediate_matches (0..{n - 1})")
        for key in ("kd_weight", "hard_label_weight", "share"):
            if not _number(p[key]) or p[key] < 0:
                raise UserError(f"{where}: {key} must be a finite number >= 0, got {p[key]!r}")
        if not p["share"] > 0:
            raise UserError(f"{where}: share must be > 0 (the phase's fraction of the run's steps)")
        predicts = bool(p["kd_weight"] or p["hard_label_weight"])
        if not isinstance(p["name"], str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", p["name"]) or ".." in p["name"]:
            raise UserError(f"{where}: name must be letters, digits, '_', '-' or '.', got {p['name']!r} (it names "
                            "the phase's model folder)")
        if len(set(p["matches"])) != len(p["matches"]):
            raise UserError(f"{where}: matches lists an index twice")
        weighted = any(config["intermediate_matches"][j]["weight"] for j in p["matches"])
        if not weighted and not predicts:
            raise UserError(f"{where}: the phase trains nothing (no match with a weight > 0, kd_weight = "
                            "hard_label_weight = 0)")
        p.setdefault("select", "metric" if predicts else "inter_loss")
        _pick(p["select"], SELECTIONS, f"{where}: select")
        if p["select"] == "inter_loss" and not weighted:
            raise UserError(f"{where}: select inter_loss needs an intermediate match with a weight > 0 in the phase")
        if p["select"] == "metric" and not predicts:
            raise UserError(f"{where}: select metric needs kd_weight or hard_label_weight > 0 in the phase (the dev "
                            "metric of an untrained classifier selects nothing)")
        _check_lr(where, p["lr"], layers)
        out.append(p)
    if len({p["name"] for p in out}) != len(out):
        raise UserError("phases: names must differ (they name the phases' model folders and curves)")
    total = sum(p["share"] for p in out)
    for p in out:
        p["share"] = p["share"] / total
    return out


def load_config_file(path):
    return read_json(path, "a distillation config (a JSON object of config keys)")
