"""GLUE metrics by name, computed with scikit-learn and scipy."""
import math
import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef


def _finite(value):
    # A constant prediction has no correlation; report 0 rather than NaN so JSON and model selection work.
    value = float(value)
    return 0.0 if math.isnan(value) else value


METRICS = {
    "accuracy": lambda pred, gold: float(np.mean(pred == gold)),
    "f1": lambda pred, gold: float(f1_score(gold, pred, zero_division=0)),
    "mcc": lambda pred, gold: _finite(matthews_corrcoef(gold, pred)),
    "pearson": lambda pred, gold: _finite(pearsonr(pred, gold)[0]),
    "spearman": lambda pred, gold: _finite(spearmanr(pred, gold)[0]),
}


def compute_metrics(spec, logits, labels):
    """{metric name: value} for a task, from raw model outputs [N, num_labels] and gold labels [N]."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    pred = logits.reshape(-1) if spec.is_regression else logits.argmax(axis=-1)
    if len(labels) < 2 and spec.is_regression:
        return {name: 0.0 for name in spec.metrics}
    with warnings.catch_warnings():  # scipy warns on constant input; _finite already reports it as 0
        warnings.simplefilter("ignore")
        return {name: METRICS[name](pred, labels) for name in spec.metrics}
