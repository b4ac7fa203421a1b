import numpy as np
import pytest

from utils.tasks.sequence import get_task
from utils.metrics import compute_metrics


def onehot(pred, n=2):
    return np.eye(n)[pred]


def test_accuracy_and_f1_by_hand():
    # gold 1 1 0 0 1, pred 1 0 0 1 1: TP=2 FP=1 FN=1 -> precision 2/3, recall 2/3, F1 2/3; accuracy 3/5
    m = compute_metrics(get_task("MRPC"), onehot([1, 0, 0, 1, 1]), [1, 1, 0, 0, 1])
    assert m == pytest.approx({"accuracy": 0.6, "f1": 2 / 3})


def test_mcc_by_hand():
    # TP=2 TN=1 FP=1 FN=1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    m = compute_metrics(get_task("cola"), onehot([1, 0, 0, 1, 1]), [1, 1, 0, 0, 1])
    assert m["mcc"] == pytest.approx(1 / 6)


def test_mcc_of_constant_prediction_is_zero():
    assert compute_metrics(get_task("CoLA"), onehot([1, 1, 1]), [1, 0, 1])["mcc"] == 0.0


def test_pearson_and_spearman_by_hand():
    # pred 1 2 3 4, gold 1 3 2 4: ranks differ by one swap -> spearman 1 - 6*2/(4*15) = 0.8; pearson also 0.8
    m = compute_metrics(get_task("sts-b"), np.array([[1.0], [2.0], [3.0], [4.0]]), [1.0, 3.0, 2.0, 4.0])
    assert m == pytest.approx({"pearson": 0.8, "spearman": 0.8})
    # a monotone but non-linear prediction: spearman 1, pearson below 1
    m = compute_metrics(get_task("STS-B"), np.array([[1.0], [2.0], [3.0], [100.0]]), [1.0, 2.0, 3.0, 4.0])
    assert m["spearman"] == pytest.approx(1.0) and m["pearson"] < 0.9


def test_constant_regression_prediction_reports_zero_not_nan():
    m = compute_metrics(get_task("STS-B"), np.ones((4, 1)), [1.0, 3.0, 2.0, 4.0])
    assert m == {"pearson": 0.0, "spearman": 0.0}


def test_main_metrics():
    assert {t: get_task(t).main_metric for t in ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE",
                                                 "WNLI"]} == {
        "CoLA": "mcc", "SST-2": "accuracy", "MRPC": "f1", "STS-B": "spearman", "QQP": "f1", "MNLI": "accuracy",
        "QNLI": "accuracy", "RTE": "accuracy", "WNLI": "accuracy"}
