"""Latency and throughput of teacher vs student: dygraph vs Paddle Inference (and onnxruntime when installed).

    python bench/latency.py --teacher out/sst2/teacher/best_model --student out/sst2/pred/best_model
    python bench/latency.py --shapes 12l-768d,4l-312d        # random weights: BERT-base vs TinyBERT 4L-312d
    python bench/latency.py --shapes 12l-768d,4l-312d-4h     # same student FLOPs with 4 heads of 78 (not 12 of 26)

For each model, engine, batch size (1, 32) and sequence length (64, 128): the median of at least --repeats
timed runs filling at least --min_seconds, after --warmup runs, examples/s, and per model the parameter count
and FLOPs per example. Then the student's speed-up over the teacher per engine and setting, next to the FLOP
ratio: the most a smaller model can save. Last, the speed-up with each model on its fastest exported engine
(Paddle Inference or onnxruntime), as one would deploy them, against the goal of 90% of the FLOP ratio.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # first: settings paddle reads when it loads
configure()
import numpy as np  # noqa: E402

from utils.inference import (ENGINES, export_static, fastest_exported, interleaved_medians, make_engines, open_engines,
                             settle, speedups)  # noqa: E402
from utils.models import quiet_paddlenlp  # noqa: E402

GOAL = 0.9  # the speed-up we aim for, as a share of the FLOP ratio


def random_model(shape, vocab_size=30522):
    import paddle
    from paddlenlp.transformers import BertConfig, BertForSequenceClassification
    layers, rest = shape.lower().split("l-")
    hidden, _, heads = rest.partition("d")
    hidden = int(hidden)
    paddle.seed(0)
    # an optional "-4h" suffix sets the head count (TinyBERT keeps 12 heads, 26 wide, at 312d)
    heads = int(heads.strip("-h")) if heads else 12 if hidden % 12 == 0 else max(1, hidden // 32)
    ffn = 1200 if hidden == 312 else 4 * hidden  # TinyBERT 4L-312d's FFN is 1200, not 4 x 312
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=int(layers),
                        num_attention_heads=heads, intermediate_size=ffn, type_vocab_size=2, num_labels=2)
    from types import SimpleNamespace

    from utils.adapters.bert import BertAdapter
    no_tokenizer = SimpleNamespace(input_names=("input_ids", "token_type_ids"), pads={"input_ids": 0})
    return BertAdapter(BertForSequenceClassification(config), no_tokenizer)


def load(path):
    from utils.adapters import load_adapter
    return load_adapter(path)


def engines(model, folder, threads, wanted):
    """name -> callable({input name: array}) for every engine asked for and available."""
    import paddle

    model.eval()

    @paddle.no_grad()
    def dygraph(inputs):
        return model({k: paddle.to_tensor(v) for k, v in inputs.items()})["logits"].numpy()

    found = {"dygraph": dygraph} if "dygraph" in wanted else {}
    export_static(model, folder)
    exported = [name for name in ENGINES if name in wanted and ENGINES[name].available()]
    make_engines(folder, exported)
    found.update(open_engines(folder, exported, threads))
    return found


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", help="teacher folder (best_model)")
    p.add_argument("--student", help="student folder (best_model): any architecture (TinyBERT, bilstm, cnn, bow)")
    p.add_argument("--shapes", default="12l-768d,4l-312d",
                   help="random-weight teacher,student shapes timed as well, LAYERSl-HIDDENd[-HEADSh] ('' to skip)")
    p.add_argument("--batch_sizes", default="1,32")
    p.add_argument("--seq_lens", default="64,128")
    p.add_argument("--engines", default="dygraph,paddle_inference,onnxruntime",
                   help=f"which to time, of dygraph, {', '.join(ENGINES)} (each only when its runtime is installed)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7, help="timed runs per setting, at least (default 7)")
    p.add_argument("--min_seconds", type=float, default=2.0,
                   help="and at least this long per setting, so millisecond calls get hundreds of runs (default 2)")
    args = p.parse_args()

    import paddle

    quiet_paddlenlp()
    paddle.set_device("cpu")
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    pairs = []
    if args.teacher and args.student:
        pairs.append(("trained", load(args.teacher), load(args.student)))
    if args.shapes:
        teacher_shape, student_shape = args.shapes.split(",")
        pairs.append((f"random {teacher_shape} vs {student_shape}", random_model(teacher_shape),
                      random_model(student_shape)))
    batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    seq_lens = [int(x) for x in args.seq_lens.split(",")]
    rng = np.random.default_rng(0)
    print(f"threads={threads}; teacher and student timed in turn; median of at least {args.repeats} runs each "
          f"and {args.min_seconds:g} s in all per setting, after {args.warmup} warm-up runs")
    wanted = args.engines.split(",")
    for title, teacher, student in pairs:
        rows = {}
        models = {"teacher": teacher, "student": student}
        with tempfile.TemporaryDirectory() as t_dir, tempfile.TemporaryDirectory() as s_dir:
            runs_T = engines(teacher, t_dir, threads, wanted)
            runs_S = engines(student, s_dir, threads, wanted)
            for engine in runs_T:
                settle()  # the previous engine's threads stop spinning before this one is timed
                for bs in batch_sizes:
                    for seq in seq_lens:
                        ids = rng.integers(2, 50, (bs, seq)).astype(np.int64)  # in every vocabulary
                        inputs = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "ids_a": ids, "ids_b": ids}
                        seconds = interleaved_medians(
                            [lambda run=runs[engine]: run(inputs) for runs in (runs_T, runs_S)],
                            args.warmup, args.repeats, args.min_seconds)
                        for role, sec in zip(("teacher", "student"), seconds):
                            m = models[role]
                            rows[(role, engine, bs, seq)] = (sec, m.num_parameters(), m.flops(seq))
        print(f"\n### {title}\n")
        print("| model | engine | batch | seq | latency ms | examples/s | params | GFLOPs/example |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        teacher_first = sorted(rows.items(), key=lambda row: row[0][0] == "student")
        for (role, engine, bs, seq), (sec, params, flops) in teacher_first:
            print(f"| {role} | {engine} | {bs} | {seq} | {sec * 1000:.1f} | {bs / sec:.1f} | {params / 1e6:.1f}M "
                  f"| {flops / 1e9:.3g} |")
        print("\n| engine | batch | seq | student speed-up | FLOP ratio | speed-up / FLOP ratio |")
        print("| --- | --- | --- | --- | --- | --- |")
        for (engine, bs, seq), (speedup, ratio) in speedups(rows).items():
            print(f"| {engine} | {bs} | {seq} | {speedup:.2f}x | {ratio:.2f}x | {speedup / ratio:.0%} |")
        best = fastest_exported(rows)
        if best:
            print(f"\nDeployed as fast as each can run: each model on its fastest exported engine. Goal: a speed-up "
                  f"of at least {GOAL:.0%} of the FLOP ratio.\n")
            print("| batch | seq | teacher on | student on | student speed-up | speed-up / FLOP ratio | goal |")
            print("| --- | --- | --- | --- | --- | --- | --- |")
            for (bs, seq), (engine_T, engine_S, speedup, ratio) in best.items():
                print(f"| {bs} | {seq} | {engine_T} | {engine_S} | {speedup:.2f}x | {speedup / ratio:.1%} "
                      f"| {'met' if speedup >= GOAL * ratio else 'not met'} |")


if __name__ == "__main__":
    main()
