"""Mean over seeds of report.py's verdicts: OUT/s<seed>/report.json for each seed given, written to OUT/summary.md
(each student's mean distilled and twin scores, the paired gain per seed, gap closed of the means, and the share
of the teacher's score the distilled student keeps).

    python bench/seed_summary.py OUT 1 2 3
    python bench/seed_summary.py --final OUT 1 2 3   # each run's final dev evaluation, read from its curve

--final is for runs made before `task_distill.py --select last`: their results hold the best of several dev
evaluations, which favours the noisier run of a pair (usually the twin); the last point of a run's VisualDL curve
is what `--select last` keeps.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from utils.files import atomic_file  # noqa: E402


def final_score(folder, metric):
    """The last dev evaluation on the run's VisualDL curve (the newest record file: a rerun starts a new one)."""
    import glob

    from visualdl import LogReader
    records = sorted(glob.glob(os.path.join(folder, "runs", "vdlrecords.*")), key=os.path.getmtime)
    return LogReader(file_path=records[-1]).get_data("scalar", "eval/" + metric[len("eval_"):])[-1].value


def with_final_scores(out, seed, report):
    """report.json's pairs with each run's final evaluation in place of its best."""
    for s in report["students"]:
        folder = os.path.join(out, f"s{seed}", "students", s["name"])
        s["distilled"], s["twin"] = (final_score(f, report["metric"]) for f in (folder, folder + "-twin"))
    return report


def summary_lines(out, seeds, final=False):
    runs = [json.load(open(os.path.join(out, f"s{s}", "report.json"))) for s in seeds]
    if final:
        runs = [with_final_scores(out, s, r) for s, r in zip(seeds, runs)]
    teacher, metric = runs[0]["teacher"], runs[0]["metric"]
    lines = [f"# {out}: teacher {metric} {teacher:.4f}, seeds {', '.join(seeds)}"
             f"{' (final evaluations)' if final else ''}", "",
             "| student | distilled (mean) | twin (mean) | paired gain, points (per seed) | gap closed (of means) "
             "| distilled / teacher |", "| --- | --- | --- | --- | --- | --- |"]
    for name in [s["name"] for s in runs[0]["students"]]:
        pairs = [next(s for s in r["students"] if s["name"] == name) for r in runs]
        d, t = np.mean([p["distilled"] for p in pairs]), np.mean([p["twin"] for p in pairs])
        gains = [100 * (p["distilled"] - p["twin"]) for p in pairs]
        closed = f"{(d - t) / (teacher - t):.2f}" if teacher != t else "-"
        lines.append(f"| {name} | {d:.4f} | {t:.4f} | {np.mean(gains):+.1f} ({', '.join(f'{g:+.1f}' for g in gains)}) "
                     f"| {closed} | {d / teacher:.1%} |")
    return lines


def main(argv):
    final = argv[0] == "--final"
    out, seeds = argv[final], argv[final + 1:]
    lines = summary_lines(out, seeds, final)
    with atomic_file(os.path.join(out, "summary-final.md" if final else "summary.md")) as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
