"""The one training loop every script drives: step, log, eval, select, checkpoint, stop.

A script builds a Job (what to train, how to get step N's batch) holding one or more Phases (the loss of a batch,
how to evaluate, how to save the phase's best model, which parameters train at what learning-rate multiplier) and
calls run(job). Phases run one after another on one step counter: TinyBERT's two stages, or one phase per layer
for progressive transfer. Batches and dropout noise are functions of (seed, step), and the
checkpoint holds the trained weights, optimizer moments, lr schedule and where training stood, so `--resume`
continues with bit-identical weights. A loss that stops being finite ends the run with one error naming the step,
before anything of that step is saved.
"""
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import paddle

from utils.errors import UserError
from utils.files import load_state, lock_output_dir, read_json, release_output_dir, write_folder

STATE_FILE, WEIGHTS_FILE, OPTIMIZER_FILE = "trainer_state.json", "trainable.pdparams", "optimizer.pdopt"
START_FRESH = "run without --resume to start fresh (the checkpoint is then replaced)"


@dataclass
class Phase:
    name: str  # "fine-tune", "intermediate", "layer 3", "prediction"
    steps: int
    loss: Callable  # (batch, index, progress in (0, 1] within the phase) -> (total or None, {term: value}, {info})
    evaluate: Callable  # () -> {"eval_<metric>": value}
    key: str  # the phase's main metric, which selects its best model; None: it has none (the latest evaluation counts)
    save_best: Callable  # () -> None: write the best model folder
    lower_is_better: bool = False
    # parameter name (as trainable.named_parameters() gives it) -> learning-rate multiplier; absent = 1, 0 = frozen
    # (no gradient is computed and the optimizer leaves the parameter bit for bit as it is)
    multipliers: dict = field(default_factory=dict)
    restore_best: Callable = None  # () -> None: load the phase's best weights before the next phase starts
    keep_last: bool = False  # the latest evaluation is the phase's result even when it has a key (nothing chosen on dev)


@dataclass
class Job:
    name: str  # progress-bar label, e.g. "distill SST-2"
    output_dir: str
    checkpoint_dir: str
    trainable: paddle.nn.Layer  # every parameter the optimizer updates (model + distillation projections)
    optimizer: object
    scheduler: object
    phases: list  # [Phase], run in order
    batch_at: Callable  # step -> (tensor batch, example index array, examples in the step)
    logging_steps: int = 50
    save_steps: int = 500
    seed: int = 42
    rank: int = 0
    world: int = 1
    log: object = None  # utils.training.ScalarLog
    fingerprint: dict = field(default_factory=dict)  # what a resumed run must agree on

    @property
    def total_steps(self):
        return sum(p.steps for p in self.phases)

    def phase_at(self, step):
        """(index, phase, first step of the phase) of global step `step` (1-based)."""
        first = 1
        for i, phase in enumerate(self.phases):
            if step < first + phase.steps:
                return i, phase, first
            first += phase.steps
        return len(self.phases) - 1, self.phases[-1], first - self.phases[-1].steps


# ---- checkpoints

def _rename_optimizer_state(opt_state, names):
    """Optimizer state keys embed paddle's generated parameter names (e.g. linear_7.w_0_moment1_0), which differ
    between processes; checkpoints store them under the structured names (model.bert.encoder...) instead."""
    by_length = sorted(names, key=len, reverse=True)
    renamed = {}
    for key, value in opt_state.items():
        owner = next((n for n in by_length if key.startswith(n + "_")), None)
        renamed[names[owner] + key[len(owner):] if owner else key] = value
    return renamed


def save_checkpoint(job, state):
    # a parameter frozen so far (a later phase's layer) has no optimizer moments yet; create them now, at the
    # values they would start from anyway, so the checkpoint holds every one and a resumed optimizer can load it
    # (paddle's optimizer refuses to create a moment that a loaded state lacks). No public API does this.
    block = paddle.static.default_main_program().global_block()
    job.optimizer._create_accumulators(block, [p for p in job.trainable.parameters()])

    def fill(folder):
        paddle.save(job.trainable.state_dict(), os.path.join(folder, WEIGHTS_FILE))
        names = {p.name: n for n, p in job.trainable.named_parameters()}
        paddle.save(_rename_optimizer_state(job.optimizer.state_dict(), names), os.path.join(folder, OPTIMIZER_FILE))
        with open(os.path.join(folder, STATE_FILE), "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2, default=str)

    write_folder(job.checkpoint_dir, fill)


def has_checkpoint(folder):
    """True when folder holds a complete checkpoint; a partial or older-format one is an error, not a restart."""
    if not os.path.isfile(os.path.join(folder, STATE_FILE)):
        return False
    missing = [f for f in (WEIGHTS_FILE, OPTIMIZER_FILE) if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise UserError(f"cannot resume: the checkpoint lacks {', '.join(missing)} (written by an older version?); "
                        + START_FRESH, folder)
    return True


# flags that change neither the batches nor the arithmetic of training: a resumed run may differ in them
NOT_TRAINING = {"output_dir", "resume", "logging_steps", "save_steps", "eval_batch_size", "max_eval_samples",
                "cache_dir", "cache_teacher_logits", "device", "label_engine", "label_part"}


def digest_examples(examples, h=None):
    """A sha256 over the texts (and labels) in order: what a checkpoint and the logit cache are keyed by."""
    import hashlib

    from utils.tasks import type_of
    h = h or hashlib.sha256()
    digest = type_of(examples).digest  # each task type says what of an example counts
    for e in examples:
        h.update(digest(e).encode("utf-8"))
    return h.hexdigest()[:16]


def hash_file(path, h):
    """Feed a file's bytes into hash h, a block at a time (weights and corpora can be large)."""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)


def digest_files(folders, h=None,
                 names=("config.json", "model_state.pdparams", "model.safetensors", "pytorch_model.bin")):
    """A sha256 over model folders' config and weights (into h when given), for checkpoints and caches that
    depend on a teacher."""
    import hashlib
    h = h or hashlib.sha256()
    for folder in folders:
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if name in names:
                h.update(name.encode())
                hash_file(os.path.join(folder, name), h)
    return h.hexdigest()[:16]


def fingerprint(flags, examples, world=1, **extra):
    """What a resumed run must share with its checkpoint: every flag that shapes training ({name: value}, those
    in NOT_TRAINING left out), the training data, the number of processes (their shards), and what the script adds
    (teachers, resolved config)."""
    found = {f"--{k}": v for k, v in sorted(flags.items()) if k not in NOT_TRAINING}
    found.update({"training data": digest_examples(examples), "processes": world}, **extra)
    return json.loads(json.dumps(found, default=str))  # as it reads back from trainer_state.json


def load_checkpoint(job):
    """Restore weights, optimizer moments and lr schedule in place; return the trainer state."""
    folder = job.checkpoint_dir
    state = read_json(os.path.join(folder, STATE_FILE), "the trainer state of a checkpoint", START_FRESH)
    if not isinstance(state.get("fingerprint"), dict) or not isinstance(state.get("scheduler"), dict):
        raise UserError(f"has no fingerprint or scheduler state; not a checkpoint this version wrote; {START_FRESH}",
                        os.path.join(folder, STATE_FILE))
    saved = state["fingerprint"]  # a key on one side only differs too (e.g. INT8 labels, then FP32 ones)
    changed = [k for k in [*job.fingerprint, *(k for k in saved if k not in job.fingerprint)]
               if saved.get(k) != job.fingerprint.get(k)]
    if changed:
        verb = "differs" if len(changed) == 1 else "differ"
        raise UserError(f"cannot resume: this run's {', '.join(changed)} {verb} from the checkpoint's; run the "
                        f"same command, or {START_FRESH}", folder)
    weights = load_state(os.path.join(folder, WEIGHTS_FILE), "the checkpoint's weights", START_FRESH)
    moments = load_state(os.path.join(folder, OPTIMIZER_FILE), "the checkpoint's optimizer state", START_FRESH)
    expected = job.trainable.state_dict()
    wrong = [k for k in expected if k not in weights or list(weights[k].shape) != list(expected[k].shape)]
    if wrong:  # cannot happen with a matching fingerprint unless the files were swapped or edited
        raise UserError(f"does not fit this model ({len(wrong)} tensors missing or of another shape, e.g. "
                        f"{wrong[0]}); {START_FRESH}", os.path.join(folder, WEIGHTS_FILE))
    job.trainable.set_state_dict(weights)
    job.optimizer.set_state_dict(_rename_optimizer_state(moments,
                                                         {n: p.name for n, p in job.trainable.named_parameters()}))
    job.scheduler.set_state_dict(state["scheduler"])
    state.setdefault("phase", 0)  # checkpoints of single-phase runs written before phases existed
    state.setdefault("phases_done", [])
    return state


# ---- the loop's named phases

def _fresh_state():
    return {"step": 0, "phase": 0, "best": None, "best_step": 0, "best_metrics": {}, "phases_done": [], "seen": 0,
            "train_seconds": 0.0}


def _enter_phase(job, index):
    """Apply phase `index`'s learning-rate multipliers (0 freezes a parameter: no gradient at all)."""
    phase = job.phases[index]
    for name, param in job.trainable.named_parameters():
        mult = float(phase.multipliers.get(name, 1.0))
        param.optimize_attr["learning_rate"] = mult
        param.stop_gradient = mult == 0


def _finish_phase(job, state, bar):
    """Record the phase's result; the next phase starts from its best weights when the phase says so."""
    phase = job.phases[state["phase"]]
    state["phases_done"].append({"phase": phase.name, "best_step": state["best_step"], **state["best_metrics"]})
    if phase.restore_best is not None and state["best_step"]:
        if job.world > 1:  # rank 0 wrote the best model; every rank reads it
            import paddle.distributed as dist
            dist.barrier()
        phase.restore_best()
        bar.write(f"phase {phase.name}: best at step {state['best_step']} ({phase.key}={state['best']:.4f}); the "
                  "next phase starts from it")
    state.update(phase=state["phase"] + 1, best=None, best_step=0, best_metrics={})


def _checked(loss, step, world):
    """The loss as a float; a NaN or infinite loss stops the run here, before a poisoned step is applied. With
    several processes they agree first (one rank stopping alone would leave the others waiting in backward)."""
    value = float(loss)
    if world > 1:
        import paddle.distributed as dist
        flag = paddle.to_tensor([0.0 if math.isfinite(value) else 1.0])
        dist.all_reduce(flag)
        value = value if float(flag) == 0 else float("nan")
    if not math.isfinite(value):
        raise UserError(f"the training loss became {value} at step {step}; stopped without applying that step "
                        "or saving anything after it (lower --learning_rate, check the inputs and loss weights)")
    return value


def _log_train(job, sums, step, state, bar):
    """Each term's mean over the steps that had it (a multi-task term appears only on its task's steps)."""
    for name, (total, n) in sums.items():
        job.log.add(f"train/{name}", total / n, step)
    job.log.add("train/lr", job.scheduler.get_lr(), step)
    job.log.add("train/examples_per_second", state["seen"] / max(state["train_seconds"], 1e-9), step)
    total, n = sums["loss"]
    bar.set_postfix(loss=f"{total / n:.4f}", lr=f"{job.scheduler.get_lr():.2e}")


def _is_better(phase, value, best):
    if best is None or phase.key is None or phase.keep_last:
        return True
    return value < best if phase.lower_is_better else value > best


def _eval_and_keep(job, phase, step, state, bar):
    job.trainable.eval()
    metrics = phase.evaluate()
    job.trainable.train()
    for name, value in metrics.items():
        job.log.add(f"eval/{name[len('eval_'):]}", value, step)
    bar.write(f"step {step}{f' ({phase.name})' if len(job.phases) > 1 else ''}: "
              + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    value = metrics[phase.key] if phase.key else None
    better = _is_better(phase, value, state["best"])
    if better:
        state.update(best=value, best_step=step, best_metrics=metrics)
    state.update(step=step, scheduler=job.scheduler.state_dict(), fingerprint=job.fingerprint)
    if job.rank == 0:
        if better:
            phase.save_best()
        save_checkpoint(job, state)


def start(job, resume=False):
    """Where training starts: fresh, or from the checkpoint (restored in place; a mismatched or incomplete one is
    refused). Scripts call it before writing anything, so a refused resume leaves the earlier run untouched.

    First the output folder is locked for this job (rank 0 holds it for every rank), so a second run on it is
    refused while this one lives; the lock goes when the script ends."""
    created = not os.path.isdir(job.output_dir)
    try:
        _lock(job)
        if resume and has_checkpoint(job.checkpoint_dir):
            state = load_checkpoint(job)
            print(f"resuming from {job.checkpoint_dir} at step {state['step']}")
            return state
        return _fresh_state()
    except BaseException:
        if job.rank == 0:
            release_output_dir(job.output_dir)
            if created and os.path.isdir(job.output_dir) and not os.listdir(job.output_dir):
                os.rmdir(job.output_dir)  # made only for the lock: a refused run leaves nothing
        raise


def _lock(job):
    """Rank 0 takes the output folder's lock; with several processes all ranks learn whether it could, so none
    trains on alone."""
    problem = None
    if job.rank == 0:
        try:
            lock_output_dir(job.output_dir)
        except UserError as err:
            problem = err
    if job.world > 1:
        import paddle.distributed as dist
        flag = paddle.to_tensor([0.0 if problem is None else 1.0])
        dist.all_reduce(flag)
        if float(flag) and problem is None:
            raise UserError("rank 0 could not take this output folder's lock (its error says why)", job.output_dir)
    if problem is not None:
        raise problem


def run(job, state):
    """Train from `state` (loop.start's) to job.total_steps; returns the run's results."""
    from tqdm import tqdm
    start_time = time.time()
    job.trainable.train()
    bar = tqdm(total=job.total_steps, initial=state["step"], desc=job.name, unit="step", dynamic_ncols=True,
               disable=job.rank != 0)
    try:
        _steps(job, state, bar)
    finally:
        bar.close()  # an error message then starts on a line of its own
    results = dict(state["best_metrics"], best_step=state["best_step"], train_runtime=time.time() - start_time,
                   train_examples_per_second=state["seen"] / max(state["train_seconds"], 1e-9),
                   train_steps=job.total_steps,  # a phase selected by "last" reports what it evaluates
                   main_metric=job.phases[-1].key or next(iter(state["best_metrics"]), None))
    if len(job.phases) > 1:
        results["phases"] = state["phases_done"] + [{"phase": job.phases[-1].name, "best_step": state["best_step"],
                                                    **state["best_metrics"]}]
    return results


def _steps(job, state, bar):
    """The loop itself: step, log, eval, keep the best, checkpoint; until total_steps."""
    sums = {}
    _enter_phase(job, state["phase"])
    for step in range(state["step"] + 1, job.total_steps + 1):
        index_p, phase, first = job.phase_at(step)
        if index_p != state["phase"]:  # the previous phase ended at the last step (evaluated and checkpointed there)
            _finish_phase(job, state, bar)
            _enter_phase(job, state["phase"])
        # step: the batch and the dropout noise are functions of (seed, step, rank), so a resumed run replays exactly
        paddle.seed(job.seed * 100003 + step + 1000003 * job.rank)
        batch, index, examples = job.batch_at(step)
        t0 = time.time()
        loss, terms, info = phase.loss(batch, index, (step - first + 1) / phase.steps)
        if loss is not None:  # every weight can be 0 at a schedule's end point
            _checked(loss, step, job.world)
            loss.backward()
            job.optimizer.step()
        job.scheduler.step()
        # gradients back to None, not zero: a parameter this step did not use (a frozen layer, another task's
        # head) is then skipped by the optimizer, instead of drifting on zero-gradient momentum, and a resumed run
        # (which starts with no gradients at all) updates exactly the same parameters
        job.optimizer.clear_grad(set_to_zero=False)
        state["train_seconds"] += time.time() - t0
        state["seen"] += examples
        for name, value in dict(terms, loss=0.0 if loss is None else loss, **info).items():
            total, n = sums.get(name, (0.0, 0))
            sums[name] = (total + float(value), n + 1)
        bar.update(1)

        # log: every loss term under its own tag
        if step % job.logging_steps == 0 or step == job.total_steps:
            _log_train(job, sums, step, state, bar)
            sums = {}

        # eval, keep the best, checkpoint (and always at a phase's last step: it selects the phase's result)
        if step % job.save_steps == 0 or step == first + phase.steps - 1:
            _eval_and_keep(job, phase, step, state, bar)
