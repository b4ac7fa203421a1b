"""Distillation losses, one map from names to functions. `_S` is the student, `_T` the teacher.

Masks are float [batch, seq] with 1 for real tokens. Intermediate losses average over real positions
only: padding carries no signal, and its share of the batch varies with the batch's length spread.
"""
import paddle
import paddle.nn.functional as F


def hidden_mse(h_S, h_T, mask):
    """MSE between (projected) hidden states [B, L, H], averaged over real tokens and hidden units."""
    per_token = (h_S - h_T).square().sum(-1)
    return (per_token * mask).sum() / (mask.sum() * h_S.shape[-1])


def attention_mse(scores_S, scores_T, mask):
    """MSE between pre-softmax attention scores [B, heads, L, L] over (query, key) pairs of real tokens.

    When the head counts differ, each side is first averaged over its heads.
    """
    if scores_S.shape[1] != scores_T.shape[1]:
        scores_S, scores_T = scores_S.mean(1, keepdim=True), scores_T.mean(1, keepdim=True)
    pairs = mask.unsqueeze([1, 3]) * mask.unsqueeze([1, 2])  # [B, 1, L, L]
    per_pair = (scores_S - scores_T).square() * pairs
    return per_pair.sum() / (pairs.sum() * scores_S.shape[1])


def soft_cross_entropy(logits_S, logits_T, temperature=1.0, scale_by_t2=True):
    """Cross-entropy of the student's tempered distribution against the teacher's, batch mean.

    Scaled by T^2 so the gradient size does not shrink as the temperature grows (Hinton et al.).
    """
    p_T = F.softmax(logits_T / temperature, axis=-1)
    loss = -(p_T * F.log_softmax(logits_S / temperature, axis=-1)).sum(-1).mean()
    return loss * temperature ** 2 if scale_by_t2 else loss


def logits_mse(logits_S, logits_T, temperature=1.0, scale_by_t2=True):
    """Regression distillation: MSE to the teacher's prediction (temperature has no meaning here)."""
    return F.mse_loss(logits_S.reshape([-1]), logits_T.reshape([-1]))


def hard_loss(logits_S, labels, regression=False):
    """The ordinary supervised loss against gold labels."""
    if regression:
        return F.mse_loss(logits_S.reshape([-1]), labels.astype("float32").reshape([-1]))
    return F.cross_entropy(logits_S, labels.reshape([-1]))


INTERMEDIATE_LOSSES = {"hidden_mse": hidden_mse, "attention_mse": attention_mse}
PREDICTION_LOSSES = {"soft_ce": soft_cross_entropy, "mse": logits_mse}


def zero():
    return paddle.zeros([], dtype="float32")
