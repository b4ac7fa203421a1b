"""The two TinyBERT objectives as loss terms, and the self-describing checkpoint that makes --resume exact."""
import json
import os

import paddle

from utils.intermediate import projection_layer
from utils.losses import attention_mse, hard_loss, hidden_mse, logits_mse, soft_cross_entropy
from utils.models import save_pretrained

INTERMEDIATE_TERMS = ("emb_loss", "hidden_loss", "attn_loss")
PREDICTION_TERMS = ("pred_loss", "hard_loss")


def intermediate_terms(cap_S, cap_T, student, layer_map, projection, mask, want_attention=True):
    """{emb_loss, hidden_loss, attn_loss}: each summed over the mapped layers, as TinyBERT does."""
    def project(s, h):
        return projection_layer(student, projection, s)(h)

    layers = [(s, t) for s, t in layer_map if s > 0]
    terms = {"emb_loss": sum(hidden_mse(project(s, cap_S.hidden[s]), cap_T.hidden[t], mask)
                             for s, t in layer_map if s == 0),
             "hidden_loss": sum(hidden_mse(project(s, cap_S.hidden[s]), cap_T.hidden[t], mask) for s, t in layers)}
    if want_attention:
        terms["attn_loss"] = sum(attention_mse(cap_S.scores(s), cap_T.scores(t), mask) for s, t in layers)
    return terms


def prediction_terms(logits_S, logits_T, labels, temperature, t2_scaling, regression):
    """{pred_loss, hard_loss}: distillation towards the teacher's outputs, and the gold-label loss."""
    kd = logits_mse if regression else soft_cross_entropy
    return {"pred_loss": kd(logits_S, logits_T, temperature, t2_scaling),
            "hard_loss": hard_loss(logits_S, labels, regression)}


def weighted_total(terms, weights):
    return sum(weights[name] * value for name, value in terms.items() if weights.get(name, 0) != 0)


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


def save_checkpoint(folder, student, tokenizer, optimizer, state):
    def write_state(path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2, default=str)

    save_pretrained(folder, student, tokenizer, extra_files={
        OPTIMIZER_FILE: lambda path: paddle.save(_rename_optimizer_state(
            optimizer.state_dict(), {p.name: n for n, p in student.named_parameters()}), path),
        STATE_FILE: write_state})


def load_checkpoint(folder, student, optimizer, scheduler):
    """Restore weights, optimizer moments and lr schedule in place; return the saved trainer state."""
    student.set_state_dict(paddle.load(os.path.join(folder, "model_state.pdparams")))
    optimizer.set_state_dict(_rename_optimizer_state(paddle.load(os.path.join(folder, OPTIMIZER_FILE)),
                                                     {n: p.name for n, p in student.named_parameters()}))
    with open(os.path.join(folder, STATE_FILE), encoding="utf-8") as f:
        state = json.load(f)
    scheduler.set_state_dict(state["scheduler"])
    return state


def has_checkpoint(folder):
    return os.path.isfile(os.path.join(folder, STATE_FILE))

