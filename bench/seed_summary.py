"""Mean over seeds of report.py's verdicts: OUT/s<seed>/report.json for each seed given, written to OUT/summary.md
(each student's mean distilled and twin scores, the paired gain per seed, gap closed of the means, and the share
of the teacher's score the distilled student keeps).

    python bench/seed_summary.py OUT 1 2 3
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from utils.files import atomic_file  # noqa: E402


def summary_lines(out, seeds):
    runs = [json.load(open(os.path.join(out, f"s{s}", "report.json"))) for s in seeds]
    teacher, metric = runs[0]["teacher"], runs[0]["metric"]
    lines = [f"# {out}: teacher {metric} {teacher:.4f}, seeds {', '.join(seeds)}", "",
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
    out, seeds = argv[0], argv[1:]
    lines = summary_lines(out, seeds)
    with atomic_file(os.path.join(out, "summary.md")) as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
