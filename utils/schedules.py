"""Schedules: the distillation temperature per example, and loss weights over training. Maps from names to
builders, so a config names them and adding one means adding one entry.

Dynamic temperatures follow arXiv 1911.07471 (Wen et al.): examples where the student still disagrees with the
teacher (flsw) or is unsure (cwsm) get a lower temperature, i.e. sharper targets that pull harder, and those
already learned a higher one, around the base temperature:
    flsw: w = (1 - cos(logits_S, logits_T))^gamma      cwsm: w = 1 / (max softmax(logits_S) + 0.001)
    tau  = base + beta * (mean(w) - w)                  (w from detached logits; the batch mean keeps the base)
"""
import paddle
import paddle.nn.functional as F


def constant_temperature():
    return lambda logits_S, logits_T, base: base


def flsw_temperature(beta=1.0, gamma=2.0):
    def schedule(logits_S, logits_T, base):
        with paddle.no_grad():
            cos = F.cosine_similarity(logits_S.detach(), logits_T.detach(), axis=-1, eps=1e-4)
            w = (1.0 - cos).clip(min=0.0) ** gamma
            return base + beta * (w.mean() - w)
    return schedule


def cwsm_temperature(beta=1.0):
    def schedule(logits_S, logits_T, base):
        with paddle.no_grad():
            w = 1.0 / (F.softmax(logits_S.detach(), axis=-1).max(-1) + 1e-3)
            return base + beta * (w.mean() - w)
    return schedule


TEMPERATURE_SCHEDULES = {"constant": constant_temperature, "flsw": flsw_temperature, "cwsm": cwsm_temperature}

# weights: a multiplier of the configured weight as a function of training progress in [0, 1]
WEIGHT_SCHEDULES = {
    "constant": lambda progress: 1.0,
    "linear_decay": lambda progress: 1.0 - progress,
    "linear_growth": lambda progress: progress,
}
