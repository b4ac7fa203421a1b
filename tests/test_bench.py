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
