import math

import numpy as np
import paddle
import pytest

from utils.distill import prediction_terms
from utils.errors import UserError
from utils.intermediate import Capture, parse_layer_map, projection_parameters, uniform_layer_map
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


def test_regression_distils_with_mse_not_a_one_logit_softmax():
    s, tt = t([[1.0], [2.0]]), t([[0.0], [4.0]])
    terms = prediction_terms(s, tt, t([0.0, 2.0]), temperature=2.0, t2_scaling=True, regression=True)
    assert float(terms["pred_loss"]) == pytest.approx(2.5)  # ((1-0)^2 + (2-4)^2) / 2
    assert float(terms["hard_loss"]) == pytest.approx(0.5)  # ((1-0)^2 + (2-2)^2) / 2
    assert float(soft_cross_entropy(s, tt)) == 0.0  # what a softmax over one logit would give: no signal


def test_hard_label_term():
    terms = prediction_terms(t([[0.0, 0.0]]), t([[1.0, 0.0]]), t([1]), 1.0, True, regression=False)
    assert float(terms["hard_loss"]) == pytest.approx(math.log(2))


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
