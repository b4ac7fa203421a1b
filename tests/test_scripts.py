import os
import subprocess
import sys

from conftest import ROOT


def run_script(env):
    return subprocess.run(["bash", "scripts/sst2.sh"], cwd=ROOT, env=dict(os.environ, PY=sys.executable, **env),
                          capture_output=True, text=True, timeout=600)


def test_task_script_runs_all_stages_then_skips_complete_ones(tmp_path, demo_glue, tiny_bert):
    env = {"GLUE_DIR": demo_glue, "TEACHER": tiny_bert, "STUDENT": "2l-16d", "STUDENT_INIT": "random",
           "OUT": str(tmp_path / "out"), "TEACHER_ARGS": "--max_steps 4 --learning_rate 1e-3",
           "INTER_ARGS": "--max_steps 4", "PRED_ARGS": "--max_steps 4"}
    first = run_script(env)
    assert first.returncode == 0, first.stderr[-3000:]
    for stage in ("teacher", "inter", "pred"):
        assert os.path.isfile(tmp_path / "out" / stage / "all_results.json")
    assert "| teacher (fine-tuned) | " in first.stdout and "| student after stage 2 (distilled) | " in first.stdout
    assert os.path.isfile(tmp_path / "out" / "report.md")

    os.remove(tmp_path / "out" / "pred" / "all_results.json")  # as if the last stage had been killed
    second = run_script(env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "skip " + str(tmp_path / "out" / "teacher") in second.stdout
    assert "skip " + str(tmp_path / "out" / "inter") in second.stdout
    assert "skip " + str(tmp_path / "out" / "pred") not in second.stdout
    assert os.path.isfile(tmp_path / "out" / "pred" / "all_results.json")


def test_task_script_needs_glue_dir():
    run = subprocess.run(["bash", "scripts/rte.sh"], cwd=ROOT, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "GLUE_DIR"})
    assert run.returncode != 0 and "GLUE_DIR" in run.stderr


def test_task_script_augments_into_its_own_folder_then_distils_on_it(tmp_path, demo_glue, tiny_bert):
    from utils.demo import vocabulary, write_vectors
    glove = write_vectors(str(tmp_path / "vectors.txt"), [w for w in vocabulary() if w.isalpha()])
    out = tmp_path / "out"
    env = {"GLUE_DIR": demo_glue, "TEACHER": tiny_bert, "STUDENT": "2l-16d", "STUDENT_INIT": "random",
           "OUT": str(out), "USE_AUG": "1", "AUG_MODEL": "none", "GLOVE": glove, "AUG_ARGS": "--N 2",
           "TEACHER_ARGS": "--max_steps 2", "INTER_ARGS": "--max_steps 2", "PRED_ARGS": "--max_steps 2"}
    run = run_script(env)
    assert run.returncode == 0, run.stderr[-3000:]
    aug = out / "data" / "SST-2" / "train_aug.tsv"
    with open(aug, encoding="utf-8") as f:
        rows = f.read().splitlines()
    assert rows[0] == "sentence\tlabel" and 240 < len(rows) - 1 <= 240 * 3
    assert sorted(os.listdir(os.path.join(demo_glue, "SST-2"))) == ["dev.tsv", "train.tsv"]  # GLUE_DIR untouched
    with open(out / "inter" / "args.json", encoding="utf-8") as f:
        assert '"use_aug": true' in f.read()
    again = run_script(env)
    assert again.returncode == 0 and "skip augmentation" in again.stdout


def test_every_script_and_bench_answers_help(capsys, monkeypatch):
    """In this process (each run as __main__, as `python SCRIPT --help` would): a subprocess per script spent
    most of its 4 s importing paddle again."""
    import runpy

    import pytest
    for script in ("run_glue.py", "run_ner.py", "run_qa.py", "task_distill.py", "general_distill.py",
                   "multitask_distill.py", "data_augmentation.py", "export_model.py", "predict.py", "report.py",
                   "word_vectors.py", "bench/bucketing.py", "bench/augmentation.py", "bench/latency.py", "bench/logit_cache.py",
                   "bench/student_latency.py", "bench/train_speed.py", "bench/label_speed.py", "bench/int8_speed.py",
                   "bench/int8_variants.py", "bench/tokenize_speed.py"):
        monkeypatch.setattr(sys, "argv", [script, "--help"])
        with pytest.raises(SystemExit) as info:
            runpy.run_path(os.path.join(ROOT, script), run_name="__main__")
        out = capsys.readouterr().out
        assert info.value.code in (0, None) and out.startswith("usage:") and "--help" in out, (script, out[-500:])


def test_import_utils_and_every_help_leave_paddle_unloaded():
    """`import utils` does nothing heavy, and each script's --help (process settings included) answers without
    paddle or scipy: paddle loads only once a script has parsed its flags."""
    scripts = ("run_glue.py", "run_ner.py", "run_qa.py", "task_distill.py", "general_distill.py",
               "multitask_distill.py", "data_augmentation.py", "export_model.py", "predict.py", "report.py",
               "word_vectors.py", "bench/latency.py", "bench/student_latency.py", "bench/label_speed.py", "bench/int8_speed.py",
               "bench/int8_variants.py", "bench/tokenize_speed.py")
    code = ("import contextlib, io, runpy, sys\n"
            "import utils\n"
            "assert not {'paddle', 'scipy'} & set(sys.modules), 'import utils'\n"
            f"for script in {scripts!r}:\n"
            "    sys.argv = [script, '--help']\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try:\n"
            "            runpy.run_path(script, run_name='__main__')\n"
            "        except SystemExit:\n"
            "            pass\n"
            "    assert not {'paddle', 'scipy'} & set(sys.modules), script\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


QUEUE_SCRIPT = """set -euo pipefail
PARALLEL_RUNS=2
source scripts/queue.sh
job() {  # job I DIR: counts the runs under way as it starts; job FAIL fails, and errexit stops it there
  local under_way
  mkdir "$2/run.$1"; under_way=("$2"/run.*); echo "${#under_way[@]}" >> "$2/concurrent"
  sleep 0.2; rmdir "$2/run.$1"; echo "$1" >> "$2/done"
  if [ "$1" = "$FAIL" ]; then false; echo "ran on" >> "$2/after_failure"; fi
}
for i in 1 2 3 4 5; do side_by_side job "$i" "$D"; done
sleep 0.5  # every run has ended before wait_all: their statuses were collected as they ended
wait_all
echo "after the queue"
"""


def run_queue(tmp_path, fail):
    return subprocess.run(["bash", "-c", QUEUE_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, D=str(tmp_path), FAIL=fail))


def test_queue_runs_at_most_parallel_runs_at_once_and_stops_on_a_failure_after_all_end(tmp_path):
    run = run_queue(tmp_path, fail="1")  # the first run fails, long before wait_all
    assert run.returncode == 1, run.stderr
    assert not (tmp_path / "after_failure").exists()  # the queued function kept the script's errexit
    assert "after the queue" not in run.stdout and "not a child" not in run.stderr
    assert sorted((tmp_path / "done").read_text().split()) == ["1", "2", "3", "4", "5"]  # the others still ran
    assert max(int(n) for n in (tmp_path / "concurrent").read_text().split()) == 2


def test_queue_ends_cleanly_when_every_run_succeeds(tmp_path):
    run = run_queue(tmp_path, fail="none")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "after the queue"
