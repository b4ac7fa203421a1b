"""Loss terms from a resolved distillation config (utils/presets.py), and the self-describing checkpoint
that makes --resume exact."""
import json
import os

import paddle

from utils.errors import UserError
from utils.intermediate import Capture, projection_layer
from utils.losses import INTERMEDIATE_LOSSES, PREDICTION_LOSSES, hard_loss
from utils.models import save_pretrained
from utils.presets import PROJECTIONS
from utils.schedules import TEMPERATURE_SCHEDULES, WEIGHT_SCHEDULES

INTERMEDIATE_TERMS = ("emb_loss", "hidden_loss", "attn_loss")
PREDICTION_TERMS = ("pred_loss", "hard_loss")


class DistillOutputs(paddle.nn.Layer):
    """A model plus the features its matches read, in one forward pass.

    requests: [(feature, layer, proj)] in match order. For the student, projections run inside forward so that
    DataParallel sees every trained parameter used in forward (it syncs gradients only for those); new
    projection layers live here (so the optimizer and checkpoints hold them), TinyBERT's own fit_dense(s) in
    the model. Returns {"logits"} when asked (stage 1 leaves them out: under DataParallel every output must
    reach the loss) and {"features"}: one tensor per request.
    """

    def __init__(self, model, requests=(), logits=True, projection_kind=None):
        super().__init__()
        self.model, self.requests, self.want_logits = model, list(requests), logits
        self.projection_kind = projection_kind
        self.capture = Capture(model, any(f == "attention" for f, _, _ in self.requests)) if self.requests else None
        self.projections = paddle.nn.LayerDict({str(i): PROJECTIONS[p[0]](p[1], p[2])
                                                for i, (_, _, p) in enumerate(self.requests) if isinstance(p, list)})

    def forward(self, input_ids, token_type_ids, attention_mask):
        logits = self.model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                            return_dict=True).logits
        out = {"logits": logits} if self.want_logits else {}
        if self.capture is not None:
            features = []
            for i, (feature, layer, proj) in enumerate(self.requests):
                x = self.capture.scores(layer) if feature == "attention" else self.capture.hidden[layer]
                if proj == "student":
                    x = projection_layer(self.model, self.projection_kind, layer)(x)
                elif isinstance(proj, list):
                    x = self.projections[str(i)](x)
                features.append(x)
            out["features"] = features
        return out


def requests(config, side, teacher=0):
    """What one side computes: the student's features for every match, a teacher's for the matches it serves."""
    matches = config["intermediate_matches"]
    if side == "S":
        return [(m["feature"], m["layer_S"], m["proj"]) for m in matches]
    return [(m["feature"], m["layer_T"], None) for m in matches if m["teacher"] == teacher]


def match_terms(config, features_S, features_T, mask):
    """[(tag, weight, value)] per match; features_T[t] lists teacher t's features in its matches' order."""
    position, out = {}, []
    for m, f_S in zip(config["intermediate_matches"], features_S):
        j = position[m["teacher"]] = position.get(m["teacher"], -1) + 1
        value = INTERMEDIATE_LOSSES[m["loss"]](f_S, features_T[m["teacher"]][j], mask)
        out.append((m.get("group") or m["name"], m["weight"], value))
    return out


def prediction_terms(config, logits_S, logits_T, labels, regression, progress):
    """[(tag, weight, value)] for distillation towards the teachers' logits (when given) and gold labels, plus
    {temperature, kd_weight, hard_weight} as they stand at this point of training (for the logs)."""
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


# ---- teacher-logit cache

def _file_digest(path, h):
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)


def cached_teacher_logits(teacher_outs, weights, paths, features, batch_size, pad_id, cache_dir):
    """[N, labels]: the teachers' weighted-mean logits of every training example, computed once.

    The file is named by a hash of the teachers' files, their weights and the token ids, so a changed teacher
    or data set (augmented, re-tokenised, truncated differently) never reads a stale cache.
    """
    import hashlib

    import numpy as np

    from utils.features import collate, eval_batches
    from utils.training import classifier_logits, to_tensors
    h = hashlib.sha256()
    for path, weight in zip(paths, weights):
        for name in sorted(os.listdir(path)):
            if name in ("config.json", "model_state.pdparams", "model.safetensors", "pytorch_model.bin"):
                h.update(name.encode())
                _file_digest(os.path.join(path, name), h)
        h.update(repr(float(weight)).encode())
    for ids, types in zip(features.input_ids, features.token_type_ids):
        h.update(ids.tobytes() + b"|" + types.tobytes() + b";")
    target = os.path.join(cache_dir, f"logits-{h.hexdigest()[:24]}.npy")
    if os.path.isfile(target):
        print(f"teacher logits: reusing {target}")
        return np.load(target)
    out = None
    with paddle.no_grad():
        for index in eval_batches(features.lengths, batch_size):
            batch = to_tensors(collate(features, index, pad_id))
            logits = sum(w * classifier_logits(t.model, batch) for w, t in zip(weights, teacher_outs)) / sum(weights)
            if out is None:
                out = np.zeros((len(features), logits.shape[-1]), dtype=np.float32)
            out[index] = logits.numpy()
    os.makedirs(cache_dir, exist_ok=True)
    tmp = target + f".{os.getpid()}.tmp.npy"
    np.save(tmp, out)
    os.replace(tmp, target)
    print(f"teacher logits: wrote {target}")
    return out


# ---- checkpoints: a from_pretrained folder plus the optimizer and a JSON of where training stood

STATE_FILE, OPTIMIZER_FILE = "trainer_state.json", "optimizer.pdopt"


def _rename_optimizer_state(opt_state, names):
    """Optimizer state keys embed paddle's generated parameter names (e.g. linear_7.w_0_moment1_0), which differ
    between processes; checkpoints store them under the structured names (tinybert.encoder...) instead."""
    by_length = sorted(names, key=len, reverse=True)
    renamed = {}
    for key, value in opt_state.items():
        owner = next((n for n in by_length if key.startswith(n + "_")), None)
        renamed[names[owner] + key[len(owner):] if owner else key] = value
    return renamed


PROJECTIONS_FILE = "match_projections.pdparams"


def save_checkpoint(folder, wrapper, tokenizer, optimizer, state):
    """wrapper: the student's DistillOutputs (the model and any match projections)."""
    def write_state(path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2, default=str)

    save_pretrained(folder, wrapper.model, tokenizer, extra_files={
        OPTIMIZER_FILE: lambda path: paddle.save(_rename_optimizer_state(
            optimizer.state_dict(), {p.name: n for n, p in wrapper.named_parameters()}), path),
        PROJECTIONS_FILE: lambda path: paddle.save(wrapper.projections.state_dict(), path),
        STATE_FILE: write_state})


def load_checkpoint(folder, wrapper, optimizer, scheduler):
    """Restore weights, projections, optimizer moments and lr schedule in place; return the trainer state."""
    wrapper.model.set_state_dict(paddle.load(os.path.join(folder, "model_state.pdparams")))
    wrapper.projections.set_state_dict(paddle.load(os.path.join(folder, PROJECTIONS_FILE)))
    optimizer.set_state_dict(_rename_optimizer_state(paddle.load(os.path.join(folder, OPTIMIZER_FILE)),
                                                     {n: p.name for n, p in wrapper.named_parameters()}))
    with open(os.path.join(folder, STATE_FILE), encoding="utf-8") as f:
        state = json.load(f)
    scheduler.set_state_dict(state["scheduler"])
    return state


def has_checkpoint(folder):
    """True when folder holds a complete checkpoint; a partial or older-format one is an error, not a restart."""
    if not os.path.isfile(os.path.join(folder, STATE_FILE)):
        return False
    missing = [f for f in ("model_state.pdparams", OPTIMIZER_FILE, PROJECTIONS_FILE)
               if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise UserError(f"cannot resume: the checkpoint lacks {', '.join(missing)} (written by an older version?); "
                        "delete it or run without --resume", folder)
    return True

