"""Loss terms from a resolved distillation config (utils/presets.py) and the models' outputs they read (the
teachers' stored logits come from utils/labels.py). Models are reached through adapters only (utils/adapters)."""

import paddle

from utils.errors import UserError, first_line
from utils import inference
from utils.losses import INTERMEDIATE_LOSSES, PREDICTION_LOSSES, hard_loss
from utils.presets import PROJECTION_KINDS
from utils.schedules import TEMPERATURE_SCHEDULES, WEIGHT_SCHEDULES

class DistillOutputs(paddle.nn.Layer):
    """An adapter plus the features its matches read, in one forward pass.

    requests: [(feature, layer, proj)] in match order. For the student, projections run inside forward so that
    DataParallel sees every trained parameter used in forward (it syncs gradients only for those); new
    projection layers live here (so the optimizer and checkpoints hold them), a TinyBERT student's own
    fit_dense(s) in its model. Returns {"logits"} when asked (stage 1 leaves them out: under DataParallel every
    output must reach the loss), {"mask"} of real tokens and {"features"}: one tensor per request.
    """

    def __init__(self, adapter, requests=(), logits=True):
        super().__init__()
        self.adapter, self.requests, self.want_logits = adapter, list(requests), logits
        self.projections = paddle.nn.LayerDict({str(i): PROJECTION_KINDS[p[0]](p[1], p[2])
                                                for i, (_, _, p) in enumerate(self.requests) if isinstance(p, list)})

    def forward(self, inputs, active=None, logits=None):
        """active: the request indices this phase needs (default all; the others come back as None); logits:
        override want_logits for this call (a phase without prediction-layer terms leaves them out)."""
        active = range(len(self.requests)) if active is None else active
        out = self.adapter(inputs, [(f, layer, p if p == "student" else None)
                                    for f, layer, p in (self.requests[i] for i in active)])
        features = [None] * len(self.requests)
        for i, x in zip(active, out["features"]):
            features[i] = self.projections[str(i)](x) if str(i) in self.projections else x
        result = {"mask": out["mask"], "features": features}
        if self.want_logits if logits is None else logits:
            result["logits"] = out["logits"]
        return result


TRACE_MIN_WIDTH = 128  # "auto" traces teachers at least this wide


def teacher_outputs(adapter, wanted, logits, engine="auto", device="cpu"):
    """The teacher's side of distillation, called like DistillOutputs. "inference" runs it as a Paddle Inference
    program (utils.inference.InferenceTeacher: ~15% faster on CPU, outputs equal to 1e-5); "auto" does so on a
    CPU for a teacher of real size and falls back to dygraph (saying so) for a model that does not trace. A tiny
    teacher (under 128 wide: the demo's and the tests') stays in dygraph under "auto": tracing it takes longer
    (about a second) than it would save."""
    if stays_dygraph(adapter, engine, device):
        return DistillOutputs(adapter, wanted, logits=logits)
    try:
        return inference.InferenceTeacher(adapter, wanted, logits)
    except Exception as err:  # whatever the tracer or the predictor raise: dygraph computes the same, slower
        reason = f"{type(err).__name__}: {first_line(err)}"
        if engine == "inference":
            raise UserError(f"--teacher_engine inference: the teacher does not run as a program ({reason})")
        adapter.drop_capture()
        print(f"note: the teacher runs in dygraph, not as a Paddle Inference program ({reason})")
        return DistillOutputs(adapter, wanted, logits=logits)


def stays_dygraph(adapter, engine, device="cpu"):
    """Whether a teacher runs eagerly: asked to, or under "auto" when it is tiny (tracing costs more than it saves)
    or not on a CPU."""
    tiny = (adapter.shape().get("hidden") or 0) < TRACE_MIN_WIDTH
    return engine == "dygraph" or (engine == "auto" and (tiny or not device.startswith("cpu")))


def requests(config, side, teacher=0):
    """What one side computes: the student's features for every match, a teacher's for the matches it serves."""
    matches = config["intermediate_matches"]
    if side == "S":
        return [(m["feature"], m["layer_S"], m["proj"]) for m in matches]
    return [(m["feature"], m["layer_T"], None) for m in matches if m["teacher"] == teacher]


def _positions(config):
    """Each match's position in its teacher's request list (requests(config, "T", t) order)."""
    count, out = {}, []
    for m in config["intermediate_matches"]:
        count[m["teacher"]] = count.get(m["teacher"], -1) + 1
        out.append(count[m["teacher"]])
    return out


def teacher_positions(config, active):
    """{teacher: the positions, in that teacher's request list, of the active matches it serves}."""
    found = {}
    for i, j in enumerate(_positions(config)):
        if i in active:
            found.setdefault(config["intermediate_matches"][i]["teacher"], []).append(j)
    return found


def match_terms(config, features_S, features_T, mask, active=None):
    """[(tag, weight, value)] per active match (default all); features_T[t] lists teacher t's features in its
    matches' order."""
    out = []
    for i, (m, f_S, j) in enumerate(zip(config["intermediate_matches"], features_S, _positions(config))):
        if active is None or i in active:
            value = INTERMEDIATE_LOSSES[m["loss"]](f_S, features_T[m["teacher"]][j], mask)
            out.append((m.get("group") or m["name"], m["weight"], value))
    return out


def prediction_terms(config, logits_S, logits_T, labels, regression, progress, view=None):
    """[(tag, weight, value)] for distillation towards the teachers' logits (when given) and gold labels, plus
    {temperature, kd_weight, hard_weight} as they stand at this point of training (for the logs)."""
    if logits_S.ndim == 3:  # per-token logits as rows of a classification: the task type's view (logits mask)
        from utils.losses import token_view
        view = view or token_view
        logits_T = None if logits_T is None else view(logits_T, labels)[0]
        logits_S, labels = view(logits_S, labels)
    kd_w = config["kd_weight"] * WEIGHT_SCHEDULES[config["kd_weight_schedule"]](progress)
    hard_w = config["hard_label_weight"] * WEIGHT_SCHEDULES[config["hard_weight_schedule"]](progress)
    out, info = [], {"kd_weight": kd_w, "hard_weight": hard_w}
    if logits_T is not None:
        schedule = config["temperature_schedule"]
        params = {k: v for k, v in schedule.items() if k != "name"}
        tau = TEMPERATURE_SCHEDULES[schedule["name"]](**params)(logits_S, logits_T, config["temperature"])
        info["temperature"] = float(tau.mean()) if isinstance(tau, paddle.Tensor) else tau
        kd = PREDICTION_LOSSES["mse" if regression else config["kd_loss"]]
        out.append(("pred_loss", kd_w, kd(logits_S, logits_T, tau, config["t2_scaling"])))
    if config["hard_label_weight"]:
        out.append(("hard_loss", hard_w, hard_loss(logits_S, labels, regression)))
    return out, info


def total_loss(terms):
    """(the weighted sum to minimise, {tag: unweighted value summed over the tag's matches} for the logs)."""
    logged, total = {}, None
    for tag, weight, value in terms:
        logged[tag] = logged.get(tag, 0.0) + value
        if weight:
            total = weight * value if total is None else total + weight * value
    return total, logged


# ---- phases (utils/presets.py resolves them; the loop runs them)

def split_steps(total, shares):
    """Steps per phase: each phase's share of `total`, rounded, the last taking the remainder; at least 1 each."""
    if total < len(shares):
        raise UserError(f"{total} training steps cannot hold {len(shares)} phases; train longer")
    steps = [max(1, round(total * share)) for share in shares[:-1]]
    return steps + [max(1, total - sum(steps))]


def lr_multipliers(phase, trainable, adapter, prefix="adapter."):
    """{parameter name in `trainable`: multiplier} from a phase's lr spec ({"embeddings", "layers", "head",
    "other"}); the adapter's parameters are those named `prefix` + its own name (prefix "": `trainable` is the
    adapter), the rest (the distiller's projections) are "other". Empty: all at 1."""
    lr = phase.get("lr") or {}
    if not lr:
        return {}
    found = {}
    for name, _ in trainable.named_parameters():
        part = adapter.part_of(name[len(prefix):]) if name.startswith(prefix) else "other"
        if isinstance(part, int):
            layers = lr.get("layers", 1.0)
            found[name] = float(layers[part - 1] if isinstance(layers, list) else layers)
        else:
            found[name] = float(lr.get(part, 1.0))
    return found


def best_folder(phases, i):
    """The folder a phase keeps its selected model in (None: a phase selected by "last" before the final one
    keeps none). The final phase writes best_model (best_inter_model when it has no prediction-layer terms, as
    TinyBERT's stage 1); an intermediate phase best_inter_model or best_<name>_model."""
    phase, last = phases[i], i == len(phases) - 1
    predicts = bool(phase["kd_weight"] or phase["hard_label_weight"])
    if last:
        return "best_model" if predicts or phase["select"] == "last" else "best_inter_model"
    if phase["select"] == "last":
        return None
    if phase["select"] == "inter_loss" and phase["name"] == "intermediate":
        return "best_inter_model"
    return f"best_{phase['name']}_model"
