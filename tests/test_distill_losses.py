import math

import numpy as np
import paddle
import pytest

from utils.distill import prediction_terms
from utils.presets import build_config
from utils.errors import UserError
from utils.adapters.bert import Capture, projection_parameters
from utils.intermediate import parse_layer_map, uniform_layer_map
from utils.losses import attention_mse, hidden_mse, soft_cross_entropy

t = paddle.to_tensor


def test_hidden_mse_excludes_padding():
    h_S = t([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    h_T = t([[[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])
    # real tokens: (1+4) + (4+9) = 18 over 2 tokens x 2 units; the padded third token would add 20000
    assert float(hidden_mse(h_S, h_T, t([[1.0, 1.0, 0.0]]))) == pytest.approx(4.5)


def test_attention_mse_counts_only_real_query_key_pairs():
    s_S = t([[[[1.0, -1e4], [-1e4, -1e4]]]])  # pad positions hold the -10000 a reference implementation keeps
    s_T = t([[[[0.0, 0.0], [0.0, 0.0]]]])
    assert float(attention_mse(s_S, s_T, t([[1.0, 0.0]]))) == pytest.approx(1.0)
    # two real tokens, two heads: diffs 1,2,3,4 in head 0 and 0 in head 1 -> (1+4+9+16) / (4 pairs * 2 heads)
    s_S = t([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    assert float(attention_mse(s_S, paddle.zeros([1, 2, 2, 2]), t([[1.0, 1.0]]))) == pytest.approx(30 / 8)


def test_attention_mse_averages_heads_when_counts_differ():
    s_S = t([[[[2.0]], [[4.0]]]])  # 2 heads, mean 3
    s_T = t([[[[1.0]]]])  # 1 head
    assert float(attention_mse(s_S, s_T, t([[1.0]]))) == pytest.approx(4.0)


def test_soft_cross_entropy_and_t2_scaling():
    s, tt = t([[0.0, 0.0]]), t([[math.log(3.0), 0.0]])
    # uniform student: CE = ln 2 whatever the teacher's distribution
    assert float(soft_cross_entropy(s, tt, 1.0)) == pytest.approx(math.log(2))
    assert float(soft_cross_entropy(s, tt, 2.0)) == pytest.approx(4 * math.log(2))  # x T^2
    assert float(soft_cross_entropy(s, tt, 2.0, scale_by_t2=False)) == pytest.approx(math.log(2))
    # student = teacher at T=1: CE = entropy of (0.75, 0.25)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert float(soft_cross_entropy(tt, tt, 1.0)) == pytest.approx(h, rel=1e-5)


def pred_config(**raw):
    S = {"layers": 2, "hidden": 16, "heads": 2, "projection": "per_layer", "fit_size": 16}
    return build_config(dict({"hard_label_weight": 1.0}, **raw), S, [{"layers": 2, "hidden": 16, "heads": 2}],
                        regression=raw.get("kd_loss") == "mse")


def test_regression_distils_with_mse_not_a_one_logit_softmax():
    s, tt = t([[1.0], [2.0]]), t([[0.0], [4.0]])
    terms, info = prediction_terms(pred_config(kd_loss="mse", temperature=2.0), s, tt, t([0.0, 2.0]),
                                   regression=True, progress=0.0)
    terms = {tag: float(value) for tag, _, value in terms}
    assert terms["pred_loss"] == pytest.approx(2.5)  # ((1-0)^2 + (2-4)^2) / 2, no T^2 factor
    assert terms["hard_loss"] == pytest.approx(0.5)  # ((1-0)^2 + (2-2)^2) / 2
    assert float(soft_cross_entropy(s, tt)) == 0.0  # what a softmax over one logit would give: no signal


def test_hard_label_term():
    terms, info = prediction_terms(pred_config(), t([[0.0, 0.0]]), t([[1.0, 0.0]]), t([1]),
                                   regression=False, progress=0.0)
    weights = {tag: w for tag, w, _ in terms}
    assert weights == {"pred_loss": 1.0, "hard_loss": 1.0}
    assert float(dict((tag, v) for tag, _, v in terms)["hard_loss"]) == pytest.approx(math.log(2))


@pytest.mark.parametrize("n_T, n_S, expected", [(12, 4, [3, 6, 9, 12]), (12, 6, [2, 4, 6, 8, 10, 12]),
                                                (6, 4, [1, 3, 4, 6]), (6, 3, [2, 4, 6])])
def test_uniform_layer_maps(n_T, n_S, expected):
    assert uniform_layer_map(n_S, n_T) == [(0, 0)] + list(zip(range(1, n_S + 1), expected))


def test_user_layer_map_and_its_errors():
    assert parse_layer_map("1,2,5,6", 4, 6) == [(0, 0), (1, 1), (2, 2), (3, 5), (4, 6)]
    with pytest.raises(UserError, match="entry 13 is out of range: the teacher has layers 1..12"):
        parse_layer_map("3,6,9,13", 4, 12)
    with pytest.raises(UserError, match="3 entries; the student has 4 layers"):
        parse_layer_map("3,6,9", 4, 12)
    with pytest.raises(UserError, match="expected comma-separated"):
        parse_layer_map("3;6", 2, 12)


def tiny_tinybert(layers=2, hidden=16, heads=2, fit=24):
    from paddlenlp.transformers import TinyBertConfig, TinyBertForSequenceClassification
    paddle.seed(0)
    return TinyBertForSequenceClassification(TinyBertConfig(
        vocab_size=30, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, fit_size=fit, num_labels=2))


def test_projection_parameter_counts():
    model = tiny_tinybert(layers=4, hidden=16, fit=24)
    count = lambda params: sum(int(np.prod(p.shape)) for p in params)
    assert count(projection_parameters(model, "shared")) == 16 * 24 + 24
    assert count(projection_parameters(model, "per_layer")) == 5 * (16 * 24 + 24)  # embeddings + 4 layers


def test_captured_scores_are_the_models_pre_softmax_attention():
    model = tiny_tinybert()
    model.eval()
    cap = Capture(model)
    ids = t([[2, 5, 7, 3, 0, 0]])
    mask = t([[1.0, 1, 1, 1, 0, 0]])
    out = model(input_ids=ids, attention_mask=mask, output_attentions=True, output_hidden_states=True,
                return_dict=True)
    for i in (1, 2):
        # the model's attention weights = softmax(scores - 10000 at padded keys)
        probs = paddle.nn.functional.softmax(cap.scores(i) + (1 - mask).unsqueeze([1, 2]) * -1e4, axis=-1)
        assert np.allclose(probs.numpy(), out.attentions[i - 1].numpy(), atol=1e-6)
    assert np.allclose(cap.hidden[2].numpy(), out.hidden_states[-1].numpy(), atol=1e-6)
    assert len(cap.hidden) == 3  # embeddings + 2 layers
    cap.remove()


# ---- the loss zoo: each against a value computed by hand

def test_kl_is_zero_at_the_teacher_and_matches_ce_minus_entropy():
    from utils.losses import kl_divergence
    logits = t([[math.log(3.0), 0.0]])
    assert float(kl_divergence(logits, logits, 2.0)) == pytest.approx(0.0, abs=1e-7)
    # teacher (3/4, 1/4), uniform student: KL = 3/4 ln(3/2) + 1/4 ln(1/2)
    assert float(kl_divergence(t([[0.0, 0.0]]), logits, 1.0)) == pytest.approx(
        0.75 * math.log(1.5) + 0.25 * math.log(0.5))


def test_attention_ce_over_real_keys_only():
    from utils.losses import attention_ce
    s_T = t([[[[math.log(3.0), 0.0, 50.0], [0.0, 0.0, 50.0], [9.0, 9.0, 9.0]]]])  # key 3 is padding
    s_S = paddle.zeros([1, 1, 3, 3])
    mask = t([[1.0, 1.0, 0.0]])
    # over the 2 real keys the student is uniform: CE = ln 2 for each of the 2 real queries
    assert float(attention_ce(s_S, s_T, mask)) == pytest.approx(math.log(2), rel=1e-5)


def test_cosine_pkd_nst_gram_by_hand():
    from utils.losses import cosine, gram, nst, pkd
    mask = t([[1.0, 1.0, 0.0]])
    h_S = t([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])
    h_T = t([[[1.0, 1.0], [0.0, 1.0], [-5.0, 1.0]]])
    # token 1: cos 45deg = 0.7071, token 2: cos 0 = 1 -> mean(1 - cos) over 2 real tokens
    assert float(cosine(h_S, h_T, mask)) == pytest.approx((1 - math.sqrt(0.5)) / 2, rel=1e-5)
    # [CLS]: unit (1,0) vs unit (0.7071, 0.7071): squared distance 2 - 2 * 0.7071
    assert float(pkd(h_S, h_T, mask)) == pytest.approx(2 - 2 * math.sqrt(0.5), rel=1e-5)
    # similarity matrices over the real tokens: S = [[1,0],[0,1]], T = [[1, .7071],[.7071, 1]]
    assert float(nst(h_S, h_T, mask)) == pytest.approx(2 * 0.5 / 4, rel=1e-5)
    # Gram / 2 tokens: S = [[1,0],[0,4]]/2, T = [[1,1],[1,2]]/2 -> diffs 0, -.5, -.5, 1 -> mean of squares
    assert float(gram(h_S, h_T, mask)) == pytest.approx((0.25 + 0.25 + 1.0) / 4, rel=1e-5)
    assert float(nst(h_S, paddle.concat([h_T, h_T], -1), mask)) >= 0  # widths may differ


def test_per_example_temperature_scales_each_example_by_its_own_t2():
    logits_S, logits_T = t([[0.0, 0.0], [0.0, 0.0]]), t([[math.log(3.0), 0.0], [2.0, 0.0]])
    tau = t([1.0, 2.0])
    whole = float(soft_cross_entropy(logits_S, logits_T, tau))
    one = [float(soft_cross_entropy(logits_S[i:i + 1], logits_T[i:i + 1], float(tau[i]))) for i in range(2)]
    assert whole == pytest.approx(sum(one) / 2) and one[1] == pytest.approx(4 * math.log(2))


def test_temperature_schedules_by_hand():
    from utils.schedules import TEMPERATURE_SCHEDULES
    logits_S = t([[1.0, 0.0], [0.0, 1.0]])
    logits_T = t([[1.0, 0.0], [1.0, 0.0]])
    assert TEMPERATURE_SCHEDULES["constant"]()(logits_S, logits_T, 4.0) == 4.0
    # flsw: cos = 1 and 0 -> w = 0 and 1 (gamma 2), mean 0.5 -> tau = 4 + 2 * (0.5 - w)
    tau = TEMPERATURE_SCHEDULES["flsw"](beta=2.0, gamma=2.0)(logits_S, logits_T, 4.0).numpy()
    np.testing.assert_allclose(tau, [5.0, 3.0], rtol=1e-4)
    # cwsm: both students' max prob = e/(1+e) -> equal weights -> the base temperature
    np.testing.assert_allclose(TEMPERATURE_SCHEDULES["cwsm"](beta=3.0)(logits_S, logits_T, 4.0).numpy(), [4.0, 4.0],
                               rtol=1e-6)
    confident = t([[5.0, 0.0], [0.0, 0.0]])  # p_max 0.9933 and 0.5: the confident example gets the higher T
    tau = TEMPERATURE_SCHEDULES["cwsm"](beta=1.0)(confident, logits_T, 4.0).numpy()
    w = 1 / (np.array([1 / (1 + math.exp(-5)), 0.5]) + 1e-3)
    np.testing.assert_allclose(tau, 4.0 + (w.mean() - w), rtol=1e-5)


def test_weight_schedules():
    from utils.schedules import WEIGHT_SCHEDULES
    assert [WEIGHT_SCHEDULES[n](0.25) for n in ("constant", "linear_decay", "linear_growth")] == [1.0, 0.75, 0.25]


def test_token_logits_keep_only_labelled_positions_for_kd_and_the_hard_loss():
    from utils.losses import hard_loss, select_positions, soft_cross_entropy
    rng = np.random.default_rng(1)
    logits_S = rng.normal(size=(2, 3, 4)).astype("float32")
    logits_T = rng.normal(size=(2, 3, 4)).astype("float32")
    labels = np.array([[-100, 2, -100], [1, -100, 3]])  # [CLS]/later pieces/padding are -100
    keep = [(0, 1), (1, 0), (1, 2)]

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    # soft cross-entropy at T = 2 over the three labelled positions only, x T^2
    expected = np.mean([-(softmax(logits_T[b, i] / 2) * np.log(softmax(logits_S[b, i] / 2))).sum() * 4
                        for b, i in keep])
    S, T, y = (paddle.to_tensor(x) for x in (logits_S, logits_T, labels))
    assert select_positions(S, y).shape == [3, 4]
    got = soft_cross_entropy(select_positions(S, y), select_positions(T, y), 2.0)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    hard = np.mean([-np.log(softmax(logits_S[b, i])[labels[b, i]]) for b, i in keep])
    assert float(hard_loss(S, y)) == pytest.approx(hard, rel=1e-5)
    assert select_positions(paddle.to_tensor(logits_S[:, 0]), y) is not None  # [B, C] passes through
    # the distiller's prediction terms apply the same mask to per-token logits before any loss
    from utils.distill import prediction_terms
    from utils.presets import build_config
    config = build_config({"temperature": 2.0, "kd_weight": 1.0, "hard_label_weight": 1.0},
                          {"layers": 1, "hidden": 4, "heads": 1}, [{"layers": 1, "hidden": 4, "heads": 1}])
    terms, _ = prediction_terms(config, S, T, y, False, 0.5)
    assert {tag: float(v) for tag, _, v in terms} == pytest.approx({"pred_loss": expected, "hard_loss": hard},
                                                                   rel=1e-5)
