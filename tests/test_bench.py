"""The benches that compare against other frameworks exit cleanly when those are absent."""
import os
import subprocess
import sys

from conftest import ROOT


def test_train_speed_without_torch_says_how_to_install_it(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")  # an interpreter where `import torch, transformers` fails
    fake.chmod(0o755)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "train_speed.py"), "--torch_python",
                           str(fake), "--model", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert "has no torch/transformers" in done.stderr and "pip install torch transformers" in done.stderr
    assert "Traceback" not in done.stderr


def test_student_latency_names_two_runs_of_one_architecture_apart():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from student_latency import student_names
    folders = ["out/a/bilstm/best_model", "demo/b/bilstm/best_model", "out/cnn/best_model", "x/teacher/best_model"]
    assert student_names(folders) == ["bilstm", "bilstm-2", "cnn", "teacher-2"]
