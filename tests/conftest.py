import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import utils  # noqa: E402,F401  (thread count before paddle)
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
