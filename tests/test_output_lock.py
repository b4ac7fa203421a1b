"""One run per output folder: a second run on a folder a live process is writing is refused at once, naming the
folder and the other process; a lock left by a killed process blocks nothing; the lock goes when a run ends."""
import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, write

import run_glue
from utils.files import LOCK_FILE, lock_output_dir, release_output_dir

HOLD = ("import sys, time; sys.path.insert(0, sys.argv[2]); from utils.files import lock_output_dir; "
        "lock_output_dir(sys.argv[1]); print('held', flush=True); time.sleep(300)")


def holder(folder):
    """A live process holding `folder`'s lock (it has printed 'held' when this returns)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), ROOT], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def glue(demo_glue, tiny_bert, out, *extra):
    return ["--task_name", "SST-2", "--glue_dir", demo_glue, "--model_name_or_path", tiny_bert, "--output_dir",
            str(out), "--max_steps", "2", "--save_steps", "2", *extra]


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_run_on_a_live_runs_folder_is_refused(tmp_path, capsys, demo_glue, tiny_bert, resume):
    out = tmp_path / "out"
    proc = holder(out)
    try:
        with pytest.raises(SystemExit) as info:
            run_glue.main(glue(demo_glue, tiny_bert, out, *(["--resume"] if resume else [])))
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert info.value.code == 2
        assert line.startswith(f"error: {out}: another run is writing to this output folder (pid {proc.pid} on "
                               "host "), line
        assert os.listdir(out) == [LOCK_FILE]  # nothing else written
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_left_by_a_killed_run_blocks_nothing(tmp_path, demo_glue, tiny_bert):
    out = tmp_path / "out"
    proc = holder(out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with open(out / LOCK_FILE) as f:
        assert json.load(f)["pid"] == proc.pid  # the file and its record stay; the kernel dropped the lock
    run_glue.main(glue(demo_glue, tiny_bert, out))
    assert (out / "all_results.json").exists() and not (out / LOCK_FILE).exists()


def test_a_record_naming_a_dead_process_blocks_nothing(tmp_path, demo_glue, tiny_bert):
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write(str(out / LOCK_FILE), json.dumps({"pid": int(dead.stdout), "host": "elsewhere", "boot": "x"}))
    run_glue.main(glue(demo_glue, tiny_bert, out))
    assert (out / "all_results.json").exists()


def test_the_lock_goes_when_a_run_ends_even_by_an_error(tmp_path, capsys, demo_glue, tiny_bert):
    out = tmp_path / "out"
    with pytest.raises(SystemExit):  # stopped inside loop.run, long after the lock was taken
        run_glue.main(glue(demo_glue, tiny_bert, out, "--learning_rate", "1e30", "--max_grad_norm", "0",
                           "--max_steps", "20", "--save_steps", "20"))
    assert "the training loss became" in capsys.readouterr().err
    assert not (out / LOCK_FILE).exists()
    proc = holder(out)  # another process can take it at once
    proc.kill()
    proc.wait()


def test_a_refused_resume_leaves_no_lock_and_no_new_folder(tmp_path, capsys, demo_glue, tiny_bert):
    out = tmp_path / "out"
    run_glue.main(glue(demo_glue, tiny_bert, out))
    with pytest.raises(SystemExit):
        run_glue.main(glue(demo_glue, tiny_bert, out, "--resume", "--max_steps", "4"))
    assert "cannot resume" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["all_results.json", "args.json", "best_model", "checkpoint", "runs"]


def test_only_rank_0_takes_the_lock(tmp_path):
    from utils import loop
    job = loop.Job(name="x", output_dir=str(tmp_path / "out"), checkpoint_dir=str(tmp_path / "out" / "checkpoint"),
                   trainable=None, optimizer=None, scheduler=None, phases=[], batch_at=None, rank=1)
    assert loop.start(job)["step"] == 0
    assert not (tmp_path / "out").exists()
    job.rank = 0
    loop.start(job)
    assert os.listdir(tmp_path / "out") == [LOCK_FILE]
    release_output_dir(job.output_dir)
    assert os.listdir(tmp_path / "out") == []


def test_within_one_process_a_folder_is_locked_once(tmp_path):
    lock_output_dir(str(tmp_path))
    lock_output_dir(str(tmp_path))  # an earlier run of this very process: no conflict with itself
    release_output_dir(str(tmp_path))
    assert not (tmp_path / LOCK_FILE).exists()
