"""Distillation losses, one map from names to functions. `_S` is the student, `_T` the teacher.

Masks are float [batch, seq] with 1 for real tokens. Intermediate losses average over real positions
only: padding carries no signal, and its share of the batch varies with the batch's length spread.
"""
import paddle
import paddle.nn.functional as F

from utils.batches import LABEL_PAD


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
    pairs = mask.unsqueeze(2) * mask.unsqueeze(1)  # [B, L, L]: both tokens real
    # summed over heads before the mask: the same value, without a multiply broadcast over the heads (slow on CPU)
    per_pair = (scores_S - scores_T).square().sum(1) * pairs
    return per_pair.sum() / (pairs.sum() * scores_S.shape[1])


def _per_example_temperature(temperature):
    """A float, or a [batch] tensor from a dynamic temperature schedule, shaped to divide [batch, labels] logits."""
    if isinstance(temperature, paddle.Tensor) and temperature.ndim > 0:
        return temperature.reshape([-1, 1])
    return temperature


def soft_cross_entropy(logits_S, logits_T, temperature=1.0, scale_by_t2=True):
    """Cross-entropy of the student's tempered distribution against the teacher's, batch mean.

    Scaled by T^2 so the gradient size does not shrink as the temperature grows (Hinton et al.); with a
    per-example temperature each example is scaled by its own T^2.
    """
    tau = _per_example_temperature(temperature)
    p_T = F.softmax(logits_T / tau, axis=-1)
    per_example = -(p_T * F.log_softmax(logits_S / tau, axis=-1)).sum(-1, keepdim=True)
    return (per_example * tau ** 2 if scale_by_t2 else per_example).mean()


def logits_mse(logits_S, logits_T, temperature=1.0, scale_by_t2=True):
    """Regression distillation: MSE to the teacher's prediction (temperature has no meaning here)."""
    return F.mse_loss(logits_S.reshape([-1]), logits_T.reshape([-1]))


def hard_loss(logits_S, labels, regression=False):
    """The ordinary supervised loss against gold labels; per-token logits [B, L, C] with labels [B, L] average
    over the labelled positions only (LABEL_PAD marks the rest)."""
    if logits_S.ndim == 3:  # the mean over the kept positions (paddle's ignore_index mean divides by all of them)
        logits_S, labels = token_view(logits_S, labels)
    logits_S, labels = gold_rows(logits_S, labels, regression)
    if labels is None:  # a batch of transfer rows only: nothing to learn from gold labels
        return (logits_S * 0).sum()
    if regression:
        return F.mse_loss(logits_S.reshape([-1]), labels.astype("float32").reshape([-1]))
    return F.cross_entropy(logits_S, labels.reshape([-1]))


def gold_rows(logits, labels, regression=False):
    """(logits, labels) of the rows that have a gold label: a negative label (transfer rows: LABEL_PAD; a transfer
    sentence's words: utils.transfer.NO_TAG) or NaN for regression has none. (logits, None) when no row has one;
    the inputs themselves when every row has one."""
    keep = paddle.logical_not(paddle.isnan(labels)) if regression else labels >= 0
    if bool(keep.all()):
        return logits, labels
    index = paddle.nonzero(keep).reshape([-1])
    if index.shape[0] == 0:
        return logits, None
    return paddle.gather(logits, index), paddle.gather(labels, index)


def token_view(logits, labels):
    """Per-token logits [B, L, C] and labels [B, L] -> ([N, C], [N]) at the N labelled positions."""
    return select_positions(logits, labels), select_positions(labels.unsqueeze(-1), labels).reshape([-1])


def select_positions(logits, labels):
    """Per-token logits [B, L, C] -> [N, C] at the N labelled positions (a word's first piece), so every
    prediction-layer loss above applies to token tasks unchanged (TextBrewer's logits mask). [B, C] passes."""
    if logits.ndim != 3:
        return logits
    keep = paddle.nonzero(labels.reshape([-1]) != LABEL_PAD).reshape([-1])
    return paddle.gather(logits.reshape([-1, logits.shape[-1]]), keep)


def kl_divergence(logits_S, logits_T, temperature=1.0, scale_by_t2=True):
    """KL(p_T || p_S) at temperature T, batch mean: soft cross-entropy minus the teacher's entropy (same gradient,
    but 0 when the student matches the teacher, which makes curves readable)."""
    tau = _per_example_temperature(temperature)
    log_p_T = F.log_softmax(logits_T / tau, axis=-1)
    per_example = (log_p_T.exp() * (log_p_T - F.log_softmax(logits_S / tau, axis=-1))).sum(-1, keepdim=True)
    return (per_example * tau ** 2 if scale_by_t2 else per_example).mean()


def _pair_mask(mask):
    return mask.unsqueeze([1, 3]) * mask.unsqueeze([1, 2])  # [B, 1, L, L]: real (query, key) pairs


def attention_ce(scores_S, scores_T, mask):
    """Cross-entropy between the teacher's and the student's attention distributions over real keys, averaged
    over real queries and heads (MiniLM-style). Padded keys get -inf-like scores before the softmax."""
    if scores_S.shape[1] != scores_T.shape[1]:
        scores_S, scores_T = scores_S.mean(1, keepdim=True), scores_T.mean(1, keepdim=True)
    key_pad = (1.0 - mask).unsqueeze([1, 2]) * -1e4
    p_T = F.softmax(scores_T + key_pad, axis=-1)
    log_p_S = F.log_softmax(scores_S + key_pad, axis=-1)
    per_query = -(p_T * log_p_S * mask.unsqueeze([1, 2])).sum(-1)  # [B, heads, L]
    query = mask.unsqueeze(1)
    return (per_query * query).sum() / (query.sum() * scores_S.shape[1])


def cosine(h_S, h_T, mask):
    """1 - cosine similarity of each real token's states (DistilBERT's alignment loss), averaged."""
    cos = F.cosine_similarity(h_S, h_T, axis=-1)
    return ((1.0 - cos) * mask).sum() / mask.sum()


def pkd(h_S, h_T, mask):
    """Patient KD: MSE between the L2-normalised [CLS] states, summed over units, batch mean."""
    cls_S, cls_T = F.normalize(h_S[:, 0], axis=-1), F.normalize(h_T[:, 0], axis=-1)
    return (cls_S - cls_T).square().sum(-1).mean()


def nst(h_S, h_T, mask):
    """Neural selectivity transfer with a linear kernel (an MMD between token distributions): MSE between the
    token-by-token cosine-similarity matrices over real pairs. Needs no projection: widths may differ."""
    n_S, n_T = F.normalize(h_S, axis=-1), F.normalize(h_T, axis=-1)
    g_S, g_T = paddle.matmul(n_S, n_S, transpose_y=True), paddle.matmul(n_T, n_T, transpose_y=True)
    pairs = _pair_mask(mask).squeeze(1)
    return ((g_S - g_T).square() * pairs).sum() / pairs.sum()


def gram(h_S, h_T, mask):
    """MSE between the unit-by-unit Gram matrices (h^T h over real tokens / their count) of one layer each:
    the single-layer form of FSP. Widths must match (use a projection)."""
    def g(h):
        h = h * mask.unsqueeze(-1)
        return paddle.matmul(h, h, transpose_x=True) / mask.sum(1).reshape([-1, 1, 1])
    return (g(h_S) - g(h_T)).square().mean()


def _standardise(h):
    """LayerNorm without trainable parameters over the last axis: each token's units to mean 0, variance 1."""
    mean = h.mean(-1, keepdim=True)
    var = (h - mean).square().mean(-1, keepdim=True)
    return (h - mean) / paddle.sqrt(var + 1e-6)


def feature_map(h_S, h_T, mask):
    """MobileBERT's feature-map transfer: MSE between each side's standardised states (a LayerNorm without
    parameters), averaged over real tokens and units. Widths must match (MobileBERT blocks keep the teacher's)."""
    return hidden_mse(_standardise(h_S), _standardise(h_T), mask)


def mean_variance(h_S, h_T, mask):
    """MobileBERT's mean and variance transfer: squared differences of each real token's mean and variance over
    the hidden units, averaged over real tokens. Needs no projection: widths may differ."""
    def stats(h):
        mean = h.mean(-1)
        return mean, (h - mean.unsqueeze(-1)).square().mean(-1)
    (m_S, v_S), (m_T, v_T) = stats(h_S), stats(h_T)
    return (((m_S - m_T).square() + (v_S - v_T).square()) * mask).sum() / mask.sum()


def attention_kl(scores_S, scores_T, mask):
    """MobileBERT's attention transfer: KL(teacher || student) between per-head attention distributions over real
    keys, averaged over real queries and heads. When the teacher has k times the student's heads, each group of k
    consecutive teacher heads is averaged (as distributions) into one."""
    heads_S, heads_T = scores_S.shape[1], scores_T.shape[1]
    key_pad = (1.0 - mask).unsqueeze([1, 2]) * -1e4
    p_T = F.softmax(scores_T + key_pad, axis=-1)
    if heads_T != heads_S:
        b, _, q, k = p_T.shape
        p_T = p_T.reshape([b, heads_S, heads_T // heads_S, q, k]).mean(2)
    log_p_S = F.log_softmax(scores_S + key_pad, axis=-1)
    keys = mask.unsqueeze([1, 2])
    per_query = (p_T * (paddle.log(p_T + 1e-12) - log_p_S) * keys).sum(-1)  # [B, heads, L]
    query = mask.unsqueeze(1)
    return (per_query * query).sum() / (query.sum() * heads_S)


INTERMEDIATE_LOSSES = {"hidden_mse": hidden_mse, "attention_mse": attention_mse, "attention_ce": attention_ce,
                       "cos": cosine, "pkd": pkd, "nst": nst, "mmd": nst, "gram": gram, "fsp": gram,
                       "feature_map": feature_map, "mean_variance": mean_variance, "attention_kl": attention_kl}
PREDICTION_LOSSES = {"soft_ce": soft_cross_entropy, "kl": kl_divergence, "mse": logits_mse}

