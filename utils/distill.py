"""The two TinyBERT objectives as loss terms, and the self-describing checkpoint that makes --resume exact."""
import json
import os

import paddle

from utils.intermediate import Capture, projection_layer
from utils.losses import attention_mse, hard_loss, hidden_mse, logits_mse, soft_cross_entropy
from utils.models import save_pretrained

INTERMEDIATE_TERMS = ("emb_loss", "hidden_loss", "attn_loss")
PREDICTION_TERMS = ("pred_loss", "hard_loss")


class DistillOutputs(paddle.nn.Layer):
    """A model plus what distillation reads from it, in one forward pass.

    For the student, projections run inside forward so that DataParallel sees every trained parameter
    used in forward (it syncs gradients only for those). Returns {logits, hidden, scores}: hidden[i] and
    scores[i] belong to layer_map pair i (scores only for transformer layers, i.e. pairs with layer > 0);
    with a layer map, logits are left out.
    """

    def __init__(self, model, layer_map=None, side=0, projection=None, attention=True):
        super().__init__()
        self.model, self.layer_map, self.side, self.projection = model, layer_map, side, projection
        self.capture = Capture(model, attention) if layer_map else None
        self.attention = attention

    def forward(self, input_ids, token_type_ids, attention_mask):
        logits = self.model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                            return_dict=True).logits
        if self.capture is None:
            return {"logits": logits}
        layers = [pair[self.side] for pair in self.layer_map]
        hidden = [self.capture.hidden[i] for i in layers]
        if self.projection:
            hidden = [projection_layer(self.model, self.projection, i)(h) for i, h in zip(layers, hidden)]
        scores = [self.capture.scores(i) for i in layers if i > 0] if self.attention else []
        # no logits: under DataParallel every output must reach the loss, and stage 1 does not use them
        return {"hidden": hidden, "scores": scores}


def intermediate_terms(out_S, out_T, mask):
    """{emb_loss, hidden_loss, attn_loss}, each summed over the mapped layers as TinyBERT does.

    The first pair of every layer map is (0, 0): embeddings to embeddings.
    """
    hidden = [hidden_mse(h_S, h_T, mask) for h_S, h_T in zip(out_S["hidden"], out_T["hidden"])]
    terms = {"emb_loss": hidden[0], "hidden_loss": sum(hidden[1:])}
    if out_S["scores"]:
        terms["attn_loss"] = sum(attention_mse(a_S, a_T, mask) for a_S, a_T in zip(out_S["scores"], out_T["scores"]))
    return terms


def prediction_terms(logits_S, logits_T, labels, temperature, t2_scaling, regression):
    """{pred_loss, hard_loss}: distillation towards the teacher's outputs (when given), and the gold-label loss."""
    terms = {"hard_loss": hard_loss(logits_S, labels, regression)}
    if logits_T is not None:
        kd = logits_mse if regression else soft_cross_entropy
        terms["pred_loss"] = kd(logits_S, logits_T, temperature, t2_scaling)
    return terms


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

