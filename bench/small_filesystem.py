"""Every script against a real 200 KB file system (a tmpfs; needs root or CAP_SYS_ADMIN), with tiny demo models:
prints, per script, the exit status, the error line and what is left on the small disk.

    sudo .venv/bin/python bench/small_filesystem.py [--size 200k]

The test suite injects the same fault without mount rights (tests/test_faults.py, conftest.small_disk); this run
checks the real thing: a full disk seen through paddle.save, numpy, VisualDL and the C++ exporters as well.
"""
import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.demo import make_tiny_bert, write_sst2


def call(main, argv):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    except Exception as e:  # the point of the bench: any traceback is a finding
        return "traceback", f"{type(e).__name__}: {e}"[:200]
    lines = err.getvalue().replace("\r", "\n").strip().split("\n")
    return code, lines[-1] if lines else ""


def mount(point, size):
    subprocess.run(["umount", point], stderr=subprocess.DEVNULL)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", point], check=True)


def left(point):
    """What is on the disk two levels deep, and any temporary names anywhere under it."""
    names = sorted(os.path.relpath(os.path.join(r, n), point) for r, ds, fs in os.walk(point) for n in ds + fs)
    shown = [n for n in names if n.count(os.sep) <= 1]
    tmp = [n for n in names if ".tmp" in os.path.basename(n) and not n.endswith("aug.tsv.tmp")]
    return f"{', '.join(shown) or '(nothing)'}; temporary names: {', '.join(tmp) or 'none'}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="200k", help="size of the small file system (tmpfs size=)")
    args = p.parse_args()
    import data_augmentation
    import export_model
    import predict
    import run_glue
    import task_distill
    work = tempfile.mkdtemp(prefix="small_fs_")
    disk = os.path.join(work, "disk")
    os.makedirs(disk)
    try:
        glue = os.path.join(work, "glue")
        write_sst2(os.path.join(glue, "SST-2"), n_train=120, n_dev=30)
        bert = make_tiny_bert(os.path.join(work, "bert"), layers=2, hidden=32, heads=2)
        call(run_glue.main, ["--task_name", "SST-2", "--glue_dir", glue, "--model_name_or_path", bert, "--output_dir",
                             os.path.join(work, "t"), "--max_steps", "2", "--save_steps", "2"])
        teacher = os.path.join(work, "t", "best_model")
        call(export_model.main, ["--model_dir", teacher, "--output_dir", os.path.join(work, "export"), "--onnx"])
        texts = os.path.join(work, "texts.txt")
        with open(texts, "w") as f:
            f.write("a good movie with fine acting\n" * 20000)
        distill = ["--task_name", "SST-2", "--glue_dir", glue, "--teacher_path", teacher, "--max_steps", 4,
                   "--save_steps", 2, "--student_model_name_or_path", "2l-16d", "--student_init", "random"]
        cases = [
            ("run_glue.py", run_glue.main, ["--task_name", "SST-2", "--glue_dir", glue, "--model_name_or_path", bert,
                                            "--output_dir", f"{disk}/o", "--max_steps", 4, "--save_steps", 2]),
            ("task_distill.py", task_distill.main, distill + ["--output_dir", f"{disk}/o"]),
            ("data_augmentation.py", data_augmentation.main, [
                "--task_name", "SST-2", "--glue_dir", glue, "--output", f"{disk}/aug.tsv", "--pretrained_bert_model",
                "none", "--method", "tang", "--p_pos", 0, "--N", 200]),
            ("export_model.py", export_model.main, ["--model_dir", teacher, "--output_dir", f"{disk}/exp", "--onnx"]),
            ("predict.py", predict.main, ["--model_dir", os.path.join(work, "export"), "--input", texts,
                                          "--output_file", f"{disk}/pred.tsv", "--max_seq_length", 16]),
        ]
        print(f"| script | exit | error line | left on the {args.size} disk |\n| --- | --- | --- | --- |")
        for name, fn, argv in cases:
            mount(disk, args.size)
            code, line = call(fn, argv)
            print(f"| {name} | {code} | `{line.replace(disk, 'DISK')}` | {left(disk)} |")
    finally:
        subprocess.run(["umount", disk], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
