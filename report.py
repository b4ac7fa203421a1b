"""What distillation bought: OUT/report.md and PNG plots from a pipeline's output folder.

    python report.py --out out/sst2

Reads the stages' folders (teacher/, inter/, pred/, and baseline/ when run; students/NAME beside students/NAME-twin),
the exports (export/teacher, export/student) and the VisualDL logs. Reports the dev metric of the teacher (stage 1's
dev loss: its classifier is not trained yet), of each distilled student and of its gold-only twin, with the gap
closed (also in report.json);
model sizes; latency of both exports (Paddle Inference, and onnxruntime for a model.onnx) next to their FLOP
ratio; plots of every loss term and dev metric over steps (so nobody needs to start VisualDL); and each stage's
path and command.
"""
import argparse
import glob
import json
import os
import sys

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.cli import task_values
from utils.errors import UserError, exits_cleanly, first_line
from utils.files import ARGS_FILE, RESULTS_FILE, atomic_file, read_json
from utils.inference import (ENGINES, EXPORTED, EXPORT_INFO, fastest_exported, interleaved_medians, open_engines,
                             settle, speedups)
from utils.models import quiet_paddlenlp

STAGES = (("teacher", "run_glue.py", "teacher (fine-tuned)"),
          ("inter", "task_distill.py", "student after stage 1 (intermediate layers; no classifier yet)"),
          ("pred", "task_distill.py", "student after stage 2 (distilled)"),
          ("baseline", "task_distill.py", "student on gold labels only"))
# More students, each beside its gold-only twin: OUT/students/NAME (distilled) and OUT/students/NAME-twin (the same
# student trained for the same steps on the gold labels alone). The pipeline's pred/ and baseline/ are the pair
# named "student".
STUDENTS_DIR, TWIN_SUFFIX = "students", "-twin"


def extra_stages(out):
    """(name, script, label) of every student under OUT/students, each followed by its twin when it has one."""
    folder = os.path.join(out, STUDENTS_DIR)
    names = sorted(n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n))) if os.path.isdir(
        folder) else []
    found = [(os.path.join(STUDENTS_DIR, n), "task_distill.py", f"{n} (a twin without its distilled student)")
             for n in names if n.endswith(TWIN_SUFFIX) and n[:-len(TWIN_SUFFIX)] not in names]
    for name in (n for n in names if not n.endswith(TWIN_SUFFIX)):
        found.append((os.path.join(STUDENTS_DIR, name), "task_distill.py", f"{name} (distilled)"))
        if os.path.isdir(os.path.join(folder, name + TWIN_SUFFIX)):
            found.append((os.path.join(STUDENTS_DIR, name + TWIN_SUFFIX), "task_distill.py",
                          f"{name} on gold labels only (twin)"))
    return found


def load_stages(out):
    """[(name, script, label, results, args or None)] of the stages whose results are readable, and a note for
    each stage that is absent, unreadable or lacks its args.json: the report shows what it has."""
    stages, notes = [], []
    for name, script, label in STAGES + tuple(extra_stages(out)):
        folder = os.path.join(out, name)
        if not os.path.isdir(folder):
            if name != "inter":  # a word student or a one-stage recipe has no stage 1
                notes.append(f"{label}: not run (no {name}/ folder)")
            continue
        try:
            results = read_json(os.path.join(folder, RESULTS_FILE), "the stage's results")
            if not isinstance(results.get("main_metric"), str):
                raise UserError("has no main_metric; not a results file this version wrote",
                                os.path.join(folder, RESULTS_FILE))
        except UserError as err:
            notes.append(f"{label}: left out, {err}")
            continue
        try:
            args = read_json(os.path.join(folder, ARGS_FILE), "the stage's arguments")
        except UserError as err:
            args = None
            notes.append(f"{label}: {err} (its command not shown)")
        stages.append((name, script, label, results, args))
    return stages, notes


def number(value, spec=".4f"):
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def scalars(run_dir):
    """{tag: [(step, value)]} from every VisualDL file of a run (a resumed run adds files; later ones win)."""
    from visualdl import LogReader
    series = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "vdlrecords.*.log"))):
        reader = LogReader(file_path=path)
        for tag in reader.get_tags().get("scalar", []):
            points = dict(series.get(tag, []))
            points.update((int(r.id), float(r.value)) for r in reader.get_data("scalar", tag))
            series[tag] = sorted(points.items())
    return series


def latency_rows(out, seq_len, repeats, notes):
    """(role, engine, batch, seq_len) -> (seconds, parameters, FLOPs per example) of the exported teacher and
    student at batch 1 and 32, on Paddle Inference and, when the export has model.onnx and onnxruntime is
    installed, on onnxruntime (every engine of utils.inference.ENGINES whose file the export holds and whose runtime
    is installed); all timed in turn so a slow spell of the machine lands on each alike."""
    import numpy as np

    runs, sizes = {}, {}
    for role in ("teacher", "student"):
        folder = os.path.join(out, "export", role)
        if not os.path.isfile(os.path.join(folder, EXPORT_INFO)):
            continue
        try:
            info = read_json(os.path.join(folder, EXPORT_INFO), "the export's description")
            runs.update({(role, name): run for name, run in open_engines(folder).items()})
            sizes[role] = (info["parameters"], info["flops"].get(str(seq_len)) or max(info["flops"].values()))
        except Exception as err:  # a damaged export costs its latency rows, not the report
            notes.append(f"latency of export/{role}: not measured ({first_line(err)})")
            runs = {k: v for k, v in runs.items() if k[0] != role}
    rows = {}
    for engine in EXPORTED:
        # one engine at a time, after the other's threads have stopped spinning (settle): timed in alternation,
        # a tiny student on Paddle Inference measured 22 ms instead of 1.8 while onnxruntime's threads spun
        group = {key: run for key, run in runs.items() if key[1] == engine}
        if not group:
            continue
        settle()
        for batch in (1, 32):
            ids = np.random.default_rng(0).integers(2, 50, (batch, seq_len))  # valid ids in every vocabulary
            inputs = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "ids_a": ids, "ids_b": ids}
            timed = interleaved_medians([lambda run=run: run(inputs) for run in group.values()],
                                        2, repeats, block_seconds=0.25)
            rows.update({(role, engine, batch, seq_len): (sec, *sizes[role])
                         for (role, _), sec in zip(group, timed)})
    return rows


def latency_lines(rows, seq_len):
    lines = ["", f"## Size and speed (CPU, sequence length {seq_len})", "",
             "| model | engine | batch | latency ms | examples/s | parameters | GFLOPs/example |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (role, engine, batch, _), (sec, params, flops) in rows.items():
        lines.append(f"| {role} | {engine} | {batch} | {sec * 1000:.2f} | {batch / sec:.1f} | {params:,} | "
                     f"{flops / 1e9:.3g} |")
    lines.append("")
    for (engine, batch, _), (speedup, ratio) in speedups(rows).items():
        lines.append(f"- {engine}, batch {batch}: student speed-up {speedup:.2f}x; FLOP ratio {ratio:.2f}x")
    for (batch, _), (engine_T, engine_S, speedup, ratio) in fastest_exported(rows).items():
        lines.append(f"- each on its fastest engine, batch {batch}: teacher on {engine_T}, student on {engine_S}, "
                     f"speed-up {speedup:.2f}x ({speedup / ratio:.0%} of the FLOP ratio)")
    if max(flops for _, _, flops in rows.values()) < 0.05e9:  # the synthetic demo's models, not real shapes
        lines += ["", "Tiny models are bound by per-call overhead, not FLOPs; bench/latency.py times real shapes."]
    return lines


def quantized_sections(out, rows, stage_args, main_metric, notes):
    """Each quantized engine (INT8 on onnxruntime) against its FP32 engine, for each export that has both files:
    size on disk, latency at batch 1 and 32 (from the latency rows), and the dev metric of both."""
    lines = []
    for name, quantized in ENGINES.items():
        if quantized.quantizes:
            lines += quantized_lines(out, rows, stage_args, main_metric, notes, quantized.quantizes, name)
    return lines


def quantized_lines(out, rows, stage_args, main_metric, notes, fp32_name, name):
    fp32_engine, engine = ENGINES[fp32_name], ENGINES[name]
    lines = []
    for role in ("teacher", "student"):
        folder = os.path.join(out, "export", role)
        if not engine.present(folder):
            continue
        sizes = [os.path.getsize(os.path.join(folder, e.file)) / 1e6 for e in (fp32_engine, engine)]
        try:
            scores = [s[main_metric] for s in dev_scores_of_export(folder, stage_args, (fp32_name, name))]
        except (UserError, KeyError, AttributeError, TypeError) as err:
            notes.append(f"INT8 dev scores of export/{role}: not measured ({err!s:.160})")
            scores = [None, None]
        ms = {(e, b): rows[(role, e, b, s)][0] * 1000 for (r, e, b, s) in rows if r == role}
        cells = []
        for batch in (1, 32):
            fp32, int8 = ms.get((fp32_name, batch)), ms.get((name, batch))
            cells.append(f"{number(fp32, '.2f')} / {number(int8, '.2f')}" + (
                f" ({fp32 / int8:.2f}x)" if fp32 and int8 else ""))
        lines.append(f"| {role} | {sizes[0]:.1f} / {sizes[1]:.1f} ({sizes[1] / sizes[0]:.0%}) | {cells[0]} | {cells[1]} | "
                     f"{number(scores[0])} / {number(scores[1])} |")
    if not lines:
        return []
    return ["", f"## {engine.label} vs FP32", "",
            f"| model | size MB FP32 / INT8 | ms at batch 1, FP32 / INT8 | ms at batch 32, FP32 / INT8 | "
            f"{main_metric} FP32 / INT8 |", "| --- | --- | --- | --- | --- |"] + lines


def dev_scores_of_export(folder, stage_args, engines):
    """The dev metrics of an export folder on each engine named, on the stage's dev set (read and encoded once)."""
    from utils.adapters import load_encoder
    from utils.tasks import load_task
    from utils.training import batched_logits
    args = argparse.Namespace(**stage_args)
    spec, _, dev = load_task(**task_values(args), with_train=False)
    features = load_encoder(folder).encode(dev[spec.dev_splits[0]], args.max_seq_length, spec.is_regression)
    return [{f"eval_{k}": v for k, v in spec.compute_metrics(
        batched_logits(ENGINES[name].load(folder), features, 64), features).items()}
        for name in engines]


def plot(series_by_stage, plots_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    files = []
    for stage, series in series_by_stage.items():
        for kind, tags in (("losses", [t for t in series if t.startswith("train/") and t.endswith("loss")]),
                           ("dev", [t for t in series if t.startswith("eval/")])):
            if not tags:
                continue
            fig, ax = plt.subplots(figsize=(6, 3.5))
            for tag in sorted(tags):
                steps, values = zip(*series[tag])
                ax.plot(steps, values, marker="o" if len(steps) < 20 else None, label=tag.split("/", 1)[1])
            ax.set_xlabel("step")
            ax.set_title(f"{stage}: {'training loss terms' if kind == 'losses' else 'dev'}")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            path = os.path.join(plots_dir, f"{stage.replace(os.sep, '_')}_{kind}.png")  # students/x -> students_x
            with atomic_file(path, "wb") as f:
                fig.savefig(f, dpi=100, format="png")
            plt.close(fig)
            files.append(path)
    return files


def gap_closed(teacher, distilled, twin):
    """The share of the twin-to-teacher distance that distillation recovers (None when the twin equals the teacher:
    there is no gap to close)."""
    if None in (teacher, distilled, twin) or teacher == twin:
        return None
    return (distilled - twin) / (teacher - twin)


def twin_verdict(out, stages, scores, main_metric):
    """{"metric", "teacher", "students": [{"name", "arch", "distilled", "twin", "gap_closed"}]}: every distilled
    student that has a gold-only twin, on the main dev metric (report.json, for scripts)."""
    from utils.adapters import arch_of
    pairs = [("student", "pred", "baseline")] + [
        (name[len(STUDENTS_DIR) + 1:], name, name + TWIN_SUFFIX) for name, _, _, _, _ in stages
        if name.startswith(STUDENTS_DIR + os.sep) and not name.endswith(TWIN_SUFFIX)]
    teacher, students = scores.get("teacher"), []
    for label, distilled, twin in pairs:
        if scores.get(distilled) is None or scores.get(twin) is None:
            continue
        try:
            arch = arch_of(os.path.join(out, distilled, "best_model"))
        except UserError:
            arch = None
        students.append({"name": label, "arch": arch, "distilled": scores[distilled], "twin": scores[twin],
                         "gap_closed": gap_closed(teacher, scores[distilled], scores[twin])})
    return {"metric": main_metric, "teacher": teacher, "students": students}


def verdict_lines(verdict):
    if not verdict["students"]:
        return []
    lines = ["", f"Distilled students against their gold-only twins (same student and steps, gold labels only; "
                 f"teacher {number(verdict['teacher'])}):", "",
             "| student | arch | distilled | twin | gain (points) | gap closed |", "| --- | --- | --- | --- | --- | --- |"]
    for s in verdict["students"]:
        lines.append(f"| {s['name']} | {s['arch'] or '-'} | {number(s['distilled'])} | {number(s['twin'])} | "
                     f"{100 * (s['distilled'] - s['twin']):+.1f} | {number(s['gap_closed'], '.2f')} |")
    return lines


@exits_cleanly
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the pipeline's output folder")
    p.add_argument("--latency", action=argparse.BooleanOptionalAction, default=True,
                   help="time the exported models (default on)")
    p.add_argument("--latency_repeats", type=int, default=5)
    args = p.parse_args(argv)
    quiet_paddlenlp()
    out = args.out
    if not os.path.isdir(out):
        raise UserError("no such folder; expected a pipeline's output folder (teacher/, pred/, ...)", out)
    stages, notes = load_stages(out)
    if not stages:
        raise UserError("no readable stage results (teacher/all_results.json, pred/all_results.json, ...): "
                        + "; ".join(notes), out)
    results = {s[0]: s[3] for s in stages}
    main_metric = next((r["main_metric"] for r in results.values() if r["main_metric"] != "eval_inter_loss"),
                       "eval_inter_loss")
    # stage 1 trains no classifier: its score on dev would be chance, so the table shows its dev loss instead
    scores = {name: r.get(main_metric) for name, r in results.items() if name != "inter"}
    lines = [f"# Distillation report: {os.path.abspath(out)}", "",
             f"Task {stages[0][3].get('task', '?')}; main dev metric `{main_metric}`.", "",
             "| model | " + main_metric + " | train examples/s | train time s |", "| --- | --- | --- | --- |"]
    for name, _, label, r, _ in stages:
        score = number(scores.get(name)) if name != "inter" else f"- (dev loss {number(r.get('eval_inter_loss'))})"
        lines.append(f"| {label} | {score} | {number(r.get('train_examples_per_second'), '.1f')} | "
                     f"{number(r.get('train_runtime'), '.0f')} |")
    verdict = twin_verdict(out, stages, scores, main_metric)
    lines += verdict_lines(verdict)
    with atomic_file(os.path.join(out, "report.json")) as f:
        json.dump(verdict, f, indent=1)
    if args.latency:
        seq = next((s[4].get("max_seq_length", 128) for s in stages if s[4]), 128)
        rows = latency_rows(out, seq, args.latency_repeats, notes)
        if rows:
            lines += latency_lines(rows, seq)
            pred_args = next((s[4] for s in stages if s[0] == "pred" and s[4]), None)
            if pred_args:
                lines += quantized_sections(out, rows, pred_args, main_metric, notes)
    if notes:
        lines += ["", "## Not in this report", ""] + [f"- {n}" for n in notes]
    plots_dir = os.path.join(out, "plots")
    os.makedirs(plots_dir, exist_ok=True)
    images = plot({s[0]: scalars(os.path.join(out, s[0], "runs")) for s in stages}, plots_dir)
    lines += ["", "## Curves", ""] + [f"![{os.path.basename(f)}](plots/{os.path.basename(f)})" for f in images]
    lines += ["", "## Stages", ""]
    for name, script, label, _, stage_args in stages:
        command = (stage_args or {}).get("command", f"{script} (args.json missing)")
        lines += [f"- {label}: `{os.path.join(out, name)}`", "", f"  `{command}`", ""]
    target = os.path.join(out, "report.md")
    with atomic_file(target) as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[:4 + 2 + len(stages)] + verdict_lines(verdict)
                    + [f"not in this report: {n}" for n in notes]))
    print(f"\nwrote {target} and {len(images)} plots in {plots_dir}")
    return target


if __name__ == "__main__":
    main(sys.argv[1:])
