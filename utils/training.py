"""Pieces every training script shares: device and seed, optimizer, evaluation, logging, result files."""
import functools
import os
import random

import numpy as np
import paddle

from utils.errors import UserError, first_line
from utils.batches import collate, eval_batches

# The first dev split is reported as eval_<metric>; MNLI's mismatched one as eval_mm_<metric>.
SPLIT_PREFIX = {"dev": "", "dev_matched": "", "dev_mismatched": "mm_"}


def set_device(device):
    try:
        paddle.set_device(device)
    except (ValueError, RuntimeError) as err:
        raise UserError(f"--device {device}: {first_line(err)}") from None


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    paddle.seed(seed)


def phased_schedule(learning_rate, phase_steps, warmup_proportion):
    """Linear warmup then linear decay within each phase (each phase starts from warmup again)."""
    def factor(step):
        for i, n in enumerate(phase_steps):
            if step < n or i == len(phase_steps) - 1:
                break
            step -= n
        warmup = int(warmup_proportion * n)  # as LinearDecayWithWarmup rounds it
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (n - step) / max(1, n - warmup))
    return paddle.optimizer.lr.LambdaDecay(learning_rate, factor)


def build_optimizer(model_or_params, learning_rate, total_steps, warmup_proportion, weight_decay, max_grad_norm=1.0,
                    phase_steps=None):
    """AdamW with linear warmup then linear decay (within each phase when phase_steps lists several); no decay
    on biases and LayerNorm weights."""
    from paddlenlp.transformers import LinearDecayWithWarmup
    params = model_or_params.parameters() if hasattr(model_or_params, "parameters") else list(model_or_params)
    params = list({id(p): p for p in params}.values())  # multi-task twins share their encoder's parameters
    if phase_steps and len(phase_steps) > 1:
        scheduler = phased_schedule(learning_rate, phase_steps, warmup_proportion)
    else:
        scheduler = LinearDecayWithWarmup(learning_rate, max(total_steps, 1), warmup_proportion)
    no_decay = {p.name for p in params if p.ndim == 1}  # biases and LayerNorm scales/shifts
    # auto_skip_clip: when the global norm is within max_grad_norm, Paddle would multiply every gradient by exactly
    # 1.0 (max / max(norm, max)); skipping that leaves the same values and saves a pass over every gradient
    clip = paddle.nn.ClipGradByGlobalNorm(max_grad_norm, auto_skip_clip=True) if max_grad_norm > 0 else None
    optimizer = paddle.optimizer.AdamW(
        learning_rate=scheduler, parameters=params, weight_decay=weight_decay,
        apply_decay_param_fun=lambda name: name not in no_decay, grad_clip=clip)
    return optimizer, scheduler


@paddle.no_grad()
def predict(adapter, features, batch_size, desc=None):
    """Logits [N, num_labels] in the features' order, computed in length-sorted batches in eval mode."""
    was_training = adapter.training
    adapter.eval()
    out = batched_logits(lambda inputs: adapter({k: paddle.to_tensor(v) for k, v in inputs.items()})["logits"].numpy(),
                         features, batch_size, desc)
    if was_training:
        adapter.train()
    return out


def batched_logits(fn, features, batch_size, desc=None, streams=1):
    """fn({column: padded array}) -> logits, over features in length-sorted batches; returned in their order:
    [N, labels], or for per-token logits an object array of N [length, labels] arrays (padding cut off).
    streams > 1 calls fn from that many threads at once, a batch each: only for an fn that allows it and releases
    the GIL while it computes (utils/inference.py's Streams of onnxruntime predictors)."""
    from concurrent.futures import ThreadPoolExecutor
    batches = eval_batches(features.lengths, batch_size)
    one_batch = functools.partial(logits_of_batch, fn, features)
    if streams <= 1:
        return assemble_logits(features, batches, map(one_batch, batches), desc)
    with ThreadPoolExecutor(streams) as pool:
        try:
            return assemble_logits(features, batches, pool.map(one_batch, batches), desc)
        except BaseException:  # a failed batch or an interrupt: the batches not started yet are dropped
            pool.shutdown(cancel_futures=True)
            raise


def assemble_logits(features, batches, computed, desc):
    """Each batch's logits (computed: in the batches' order) put back in the features' order."""
    from tqdm import tqdm
    out = None
    first_column = next(iter(features.columns.values()))  # its row lengths cut per-token logits back
    for index, logits in tqdm(zip(batches, computed), total=len(batches), desc=desc, unit="batch", leave=False,
                              disable=desc is None or len(batches) < 50):
        if out is None:
            out = np.empty(len(features), dtype=object) if logits.ndim == 3 else np.zeros(
                (len(features), logits.shape[-1]), dtype=np.float32)
        if logits.ndim == 3:
            for row, i in zip(logits, index):
                out[i] = row[:len(first_column[i])].astype(np.float32)
        else:
            out[index] = logits
    return out


def logits_of_batch(fn, features, index):
    """fn's logits of one batch: the rows at `index`, padded, without their labels."""
    inputs = collate(features, index)
    inputs.pop("labels")
    return np.asarray(fn(inputs))


def evaluate(spec, adapter, dev_sets, batch_size):
    """{'eval_<metric>': value} over every dev split (MNLI's mismatched as eval_mm_<metric>)."""
    results = {}
    for split, features in dev_sets.items():
        logits = predict(adapter, features, batch_size)
        for name, value in spec.compute_metrics(logits, features).items():
            results[f"eval_{SPLIT_PREFIX.get(split, split + '_')}{name}"] = value
    return results


class ScalarLog:
    """VisualDL scalars plus an in-memory copy (for the results file and plots); silent off rank 0.

    fresh: a run that starts from step 0 owns logdir's curves and removes an earlier run's event files first, so
    a rerun into the same output folder never mixes two runs' curves; a resumed run adds to them.
    """

    def __init__(self, logdir, enabled=True, fresh=True):
        self.history = {}
        self.writer = None
        if enabled:
            from visualdl import LogWriter
            if fresh and os.path.isdir(logdir):
                for name in os.listdir(logdir):
                    if name.startswith("vdlrecords."):
                        os.remove(os.path.join(logdir, name))
            self.writer = LogWriter(logdir=logdir)

    def add(self, tag, value, step):
        value = float(value)
        self.history.setdefault(tag, []).append((int(step), value))
        if self.writer is not None:
            self.writer.add_scalar(tag=tag, value=value, step=int(step))

    def close(self):
        if self.writer is not None:
            self.writer.close()


def command_line(script, argv=None):
    """The command that started this run, for args.json and reports."""
    import shlex
    import sys
    return "python " + shlex.join([script] + list(sys.argv[1:] if argv is None else argv))


