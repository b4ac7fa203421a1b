import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from utils.process import configure  # first: settings paddle reads when it loads
configure()
import pytest  # noqa: E402

SHARED_GLUE = os.path.join(ROOT, "..", "shared", "data", "glue")
needs_shared_glue = pytest.mark.skipif(not os.path.isdir(SHARED_GLUE), reason="../shared/data/glue is absent")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A random 2-layer, 32-wide BERT over the demo vocabulary, as a PaddleNLP folder."""
    from utils.demo import make_tiny_bert
    return make_tiny_bert(str(tmp_path_factory.mktemp("models") / "tiny-bert"), layers=2, hidden=32, heads=2)


@pytest.fixture(scope="session")
def demo_glue(tmp_path_factory):
    """A GLUE folder holding the synthetic SST-2-format task (240 train rows, 60 dev rows)."""
    from utils.demo import write_sst2
    root = tmp_path_factory.mktemp("glue")
    write_sst2(str(root / "SST-2"), n_train=240, n_dev=60)
    return str(root)


@pytest.fixture(scope="session")
def learnt_task(tmp_path_factory, tiny_bert):
    """(GLUE folder, teacher folder, its results): the demo task at 1,000 training rows (200 dev rows, 52.5% of them
    the majority label) and a teacher fine-tuned on it (0.83 dev accuracy), for tests that need learning to show."""
    import run_glue
    from utils.demo import write_sst2
    root = tmp_path_factory.mktemp("learnt")
    glue = str(root / "clean")
    write_sst2(os.path.join(glue, "SST-2"), n_train=1000, n_dev=200, seed=7)
    results = run_glue.main(["--task_name", "SST-2", "--glue_dir", glue, "--model_name_or_path", tiny_bert,
                             "--output_dir", str(root / "teacher"), "--num_train_epochs", "6", "--save_steps", "100",
                             "--learning_rate", "1e-3", "--batch_size", "16", "--max_seq_length", "32"])
    return glue, str(root / "teacher" / "best_model"), results


def make_teacher(folder, tiny_bert_folder, seed=1):
    """A BERT classifier saved as run_glue.py would (random classifier: fine for mechanics)."""
    import paddle
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer
    paddle.seed(seed)
    AutoModelForSequenceClassification.from_pretrained(tiny_bert_folder, num_labels=2).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert_folder).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tiny_bert):
    """A 2-layer, 32-wide BERT classifier."""
    return make_teacher(str(tmp_path_factory.mktemp("teacher") / "best_model"), tiny_bert)


@pytest.fixture(scope="session")
def other_teacher(tmp_path_factory):
    """A second teacher of another depth and width (3 layers, 48 wide) over the same vocabulary."""
    from utils.demo import make_tiny_bert
    base = make_tiny_bert(str(tmp_path_factory.mktemp("models") / "tiny-bert-3l"), layers=3, hidden=48, heads=2,
                          seed=5)
    return make_teacher(str(tmp_path_factory.mktemp("teacher2") / "best_model"), base, seed=2)


def write(path, text, encoding="utf-8"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text.encode(encoding) if isinstance(text, str) else text)
    return path


def model_logits(model_dir, examples, max_seq_length=128, batch_size=16):
    """Dygraph logits of any saved model folder (through its adapter), in the examples' order."""
    import paddle

    from utils.adapters import load_adapter
    from utils.training import predict
    paddle.set_device("cpu")
    model = load_adapter(str(model_dir))
    return predict(model, model.encoder.encode(examples, max_seq_length), batch_size)


class _CappedFile:
    """A file whose writes draw on a shared byte budget and fail with ENOSPC past it, like a full disk."""

    def __init__(self, f, budget):
        self._f, self._budget = f, budget

    def write(self, data):
        import errno
        if self._budget[0] < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget[0] -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __iter__(self):
        return iter(self._f)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def small_disk(monkeypatch, folder, capacity):
    """Make Python-level writes under `folder` fail with ENOSPC once `capacity` bytes have been written there: a
    small file system without needing mount rights. Returns the remaining budget, a one-item list."""
    import builtins
    folder, budget = os.path.abspath(str(folder)), [capacity]
    real_open, real_fdopen = builtins.open, os.fdopen

    def inside(path):
        return os.path.abspath(str(path)).startswith(folder + os.sep)

    def capped_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax+") and isinstance(file, (str, os.PathLike))
        return _CappedFile(f, budget) if writing and inside(file) else f

    def capped_fdopen(fd, mode="r", *args, **kwargs):
        path = os.readlink(f"/proc/self/fd/{fd}")
        f = real_fdopen(fd, mode, *args, **kwargs)
        return _CappedFile(f, budget) if any(c in mode for c in "wax+") and inside(path) else f

    monkeypatch.setattr(builtins, "open", capped_open)
    monkeypatch.setattr(os, "fdopen", capped_fdopen)
    return budget


def leftovers(folder):
    """Temporary names under folder (what a failed write must not leave behind)."""
    found = []
    for root, dirs, files in os.walk(folder):
        found += [os.path.join(root, n) for n in dirs + files if ".tmp" in n or ".old" in n]
    return found


def kill_then_resume(monkeypatch, step, run, resumed_run, seed=42):
    """Run `run()` so that it dies (KeyboardInterrupt, as a kill would) when the loop reseeds for `step`, then
    call `resumed_run()` with the real paddle.seed back."""
    import paddle
    real = paddle.seed

    def seed_then_die(value):
        if value == seed * 100003 + step:
            raise KeyboardInterrupt
        return real(value)
    monkeypatch.setattr(paddle, "seed", seed_then_die)
    try:
        run()
        raise AssertionError(f"the run did not reach step {step}")
    except KeyboardInterrupt:
        pass
    finally:
        monkeypatch.setattr(paddle, "seed", real)
    return resumed_run()
