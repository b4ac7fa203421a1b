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
    assert "| teacher | eval_accuracy = " in first.stdout and "| inter | eval_inter_loss = " in first.stdout

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
