"""Sequence classification, one of the task types (utils/tasks/__init__.py): GLUE tasks and custom TSVs, what the
columns are, how to read them, and which metric selects models; one prediction (a label or a score) per example.

Files are read as canonical GLUE leaves them: split on tabs only (sentences contain `"`), a UTF-8
byte-order mark allowed (MRPC), no header for CoLA, a last line without a newline (CoLA dev). Every
row is checked, and a bad one stops the run with the file, the line and what was expected.
"""
import os
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from utils.errors import UserError, first_line

HEAD = "sequence"  # logits [batch, labels]
PER_POSITION = False  # a classifier on the pooled [CLS] state
KIND = "sequence classification"
NAMES = ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI", "custom")  # and spellings (get_task)
OPTIONS = ("text_a_column", "text_b_column", "label_column", "labels", "regression", "no_header")
SCRIPT = "run_glue.py"
SUFFIX = "tsv"
REFUSES = {}

Column = Union[int, str]  # an index (0-based) or a header name


@dataclass(frozen=True)
class TaskSpec:
    name: str  # the folder name under GLUE_DIR, e.g. "SST-2"
    text_a: Column
    text_b: Optional[Column]
    label: Column
    labels: Optional[Tuple[str, ...]]  # None: regression on a float label
    metrics: Tuple[str, ...]
    main_metric: str
    header: bool = True
    num_columns: Optional[int] = None  # only needed without a header
    dev_splits: Tuple[str, ...] = ("dev",)
    ppnlp_name: Optional[str] = None  # name for paddlenlp.datasets.load_dataset("glue", ...)
    head: str = "sequence"  # one prediction per example (utils/tasks/tokens.py: one per word)

    @property
    def is_regression(self):
        return self.labels is None

    @property
    def num_labels(self):
        return 1 if self.is_regression else len(self.labels)

    @staticmethod
    def view(logits, labels):
        """Every example's logits count: they are already the rows of a classification."""
        return logits, labels

    def compute_metrics(self, logits, features):
        from utils.metrics import compute_metrics
        return compute_metrics(self, logits, features.labels)


_BIN = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
GLUE_TASKS = {
    "cola": TaskSpec("CoLA", 3, None, 1, _BIN, ("mcc",), "mcc", header=False, num_columns=4, ppnlp_name="cola"),
    "sst2": TaskSpec("SST-2", "sentence", None, "label", _BIN, ("accuracy",), "accuracy", ppnlp_name="sst-2"),
    "mrpc": TaskSpec("MRPC", "#1 String", "#2 String", "Quality", _BIN, ("accuracy", "f1"), "f1", ppnlp_name="mrpc"),
    "stsb": TaskSpec("STS-B", "sentence1", "sentence2", "score", None, ("pearson", "spearman"), "spearman",
                     ppnlp_name="sts-b"),
    "qqp": TaskSpec("QQP", "question1", "question2", "is_duplicate", _BIN, ("accuracy", "f1"), "f1", ppnlp_name="qqp"),
    "mnli": TaskSpec("MNLI", "sentence1", "sentence2", "gold_label", ("contradiction", "entailment", "neutral"),
                     ("accuracy",), "accuracy", dev_splits=("dev_matched", "dev_mismatched"), ppnlp_name="mnli"),
    "qnli": TaskSpec("QNLI", "question", "sentence", "label", _NLI2, ("accuracy",), "accuracy", ppnlp_name="qnli"),
    "rte": TaskSpec("RTE", "sentence1", "sentence2", "label", _NLI2, ("accuracy",), "accuracy", ppnlp_name="rte"),
    "wnli": TaskSpec("WNLI", "sentence1", "sentence2", "label", _BIN, ("accuracy",), "accuracy", ppnlp_name="wnli"),
}


def _key(name):
    return name.lower().replace("-", "").replace("_", "")


def _parse_column(value):
    return int(value) if value is not None and str(value).isdigit() else value


def get_task(name, custom=None):
    """The spec of a GLUE task (any case, with or without the dash) or of `custom`.

    `custom` holds the custom task's flags: text_a, text_b, label columns (names or indices),
    no_header, labels (comma list, or None to discover from train), regression, data_dir.
    """
    key = _key(name)
    if key in GLUE_TASKS:
        return GLUE_TASKS[key]
    if key != "custom":
        raise UserError(f"unknown task '{name}'; expected one of {', '.join(NAMES)} (any case)")
    return _custom_task(custom or {})


def _custom_task(opts):
    text_a, text_b, label = (_parse_column(opts.get(k)) for k in ("text_a_column", "text_b_column", "label_column"))
    header = not opts.get("no_header", False)
    if text_a is None or label is None:
        raise UserError("the custom task needs --text_a_column and --label_column (names or 0-based indices)")
    if not header and any(isinstance(c, str) for c in (text_a, text_b, label) if c is not None):
        raise UserError("with --no_header, columns must be given as 0-based indices")
    labels = None
    if not opts.get("regression"):
        given = opts.get("labels")
        labels = tuple(x.strip() for x in given.split(",")) if given else _discover_labels(
            TaskSpec("custom", text_a, text_b, label, (), (), "", header=header), opts.get("data_dir"))
        if len(labels) < 2:
            raise UserError(f"a classification task needs at least two labels, got {list(labels)}; "
                            "give --labels a,b or --regression")
    if labels is None:
        metrics, main = ("pearson", "spearman"), "spearman"
    elif len(labels) == 2:
        metrics, main = ("accuracy", "f1"), "accuracy"
    else:
        metrics, main = ("accuracy",), "accuracy"
    return TaskSpec("custom", text_a, text_b, label, labels, metrics, main, header=header)


def _discover_labels(spec, data_dir):
    """Sorted distinct labels of train.tsv (numerically when they are integers), so every script agrees."""
    if not data_dir:
        raise UserError("the custom task needs --data_dir (a folder with train.tsv and dev.tsv)")
    tsv = TsvFile(split_path(data_dir, "train"), spec)
    col = tsv.index[spec.label]
    found = {fields[col].strip() for _, fields in tsv.rows()}
    return tuple(sorted(found, key=lambda s: (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s)))


@dataclass
class Example:
    text_a: str
    text_b: Optional[str]
    label: Union[int, float]


class TsvFile:
    """One task file: its header (raw fields, or None) and its rows as (line number, fields), streamed."""

    def __init__(self, path, spec):
        self.path, self.spec = path, spec
        if not os.path.isfile(path):
            what = "a directory" if os.path.isdir(path) else "no such file"
            raise UserError(f"{what}; expected the {spec.name} TSV file", path)
        self.header = None
        self.bom = False
        lines = self._lines()
        first = next(lines, None)
        lines.close()
        if first is None:
            raise UserError("empty file; expected " + ("a header line and rows" if spec.header else "rows"), path)
        if spec.header:
            self.header = first[1]
            self.num_columns = len(self.header)
            self.index = {c: self._resolve(c) for c in (spec.text_a, spec.text_b, spec.label) if c is not None}
        else:
            self.num_columns = spec.num_columns or len(first[1])
            self.index = {c: c for c in (spec.text_a, spec.text_b, spec.label) if c is not None}
            bad = [c for c in self.index if c >= self.num_columns]
            if bad:
                raise UserError(f"column {bad[0]} does not exist: rows have {self.num_columns} columns", path, 1)

    def _resolve(self, column):
        if isinstance(column, int):
            if column >= self.num_columns:
                raise UserError(f"column {column} does not exist: the header has {self.num_columns} columns",
                                self.path, 1)
            return column
        if column not in self.header:
            raise UserError(f"no column '{column}' in the header; expected one of: {', '.join(self.header)}",
                            self.path, 1)
        return self.header.index(column)

    def _lines(self):
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise UserError(f"not UTF-8 text (byte {err.start}); expected a UTF-8 TSV file",
                                    self.path, lineno) from None
                if lineno == 1 and text.startswith("\ufeff"):
                    text, self.bom = text[1:], True
                text = text.rstrip("\n").rstrip("\r")
                if text:
                    yield lineno, text.split("\t")

    def rows(self):
        """(line number, fields) of every data row, each checked for its column count."""
        lines = self._lines()
        if self.spec.header:
            next(lines)
        for lineno, fields in lines:
            if len(fields) != self.num_columns:
                raise UserError(f"expected {self.num_columns} tab-separated columns, found {len(fields)}",
                                self.path, lineno)
            yield lineno, fields

    def examples(self, max_samples=None):
        spec, idx = self.spec, self.index
        for n, (lineno, fields) in enumerate(self.rows()):
            if max_samples is not None and n >= max_samples:
                return
            text_b = fields[idx[spec.text_b]] if spec.text_b is not None else None
            label = parse_label(spec, fields[idx[spec.label]], self.path, lineno)
            yield Example(fields[idx[spec.text_a]], text_b, label)


def parse_label(spec, raw, path=None, lineno=None):
    raw = raw.strip()
    if spec.is_regression:
        try:
            return float(raw)
        except ValueError:
            raise UserError(f"label '{raw}' is not a number; {spec.name} expects a float score", path, lineno) from None
    if raw not in spec.labels:
        raise UserError(f"label '{raw}' is not one of {', '.join(spec.labels)}", path, lineno)
    return spec.labels.index(raw)


def split_path(data_dir, split):
    return os.path.join(data_dir, f"{split}.tsv")


def read_examples(spec, data_dir, split, max_samples=None):
    """Examples of one split ('train', 'dev', 'train_aug', 'dev_matched', ...) from a local folder."""
    examples = list(TsvFile(split_path(data_dir, split), spec).examples(max_samples))
    if not examples:
        raise UserError("no examples; expected at least one data row", split_path(data_dir, split))
    return examples


def download_examples(spec, split, max_samples=None):
    """The paddlenlp route: downloads GLUE when online (or reads $PPNLP_HOME/datasets/Glue when cached)."""
    if spec.ppnlp_name is None:
        raise UserError(f"task {spec.name} has no download; pass --data_dir")
    from paddlenlp.datasets import load_dataset
    try:
        data = load_dataset("glue", spec.ppnlp_name, splits=split)
    except Exception as err:  # paddlenlp raises RuntimeError after its retries; anything else is the same story
        raise UserError(f"could not load GLUE {spec.name} through paddlenlp ({first_line(err, 120)}); "
                        f"offline, pass --glue_dir DIR with DIR/{spec.name}/{split}.tsv") from None
    out = []
    for row in data:
        if max_samples is not None and len(out) >= max_samples:
            break
        label = row["labels"]
        label = float(label) if spec.is_regression else (label if isinstance(label, int) else spec.labels.index(label))
        text_a = row.get("sentence", row.get("sentence1"))
        out.append(Example(text_a, row.get("sentence2"), label))
    return out


def task_dir(spec, glue_dir=None, data_dir=None):
    """The folder holding the task's TSVs, or None for the download route."""
    if data_dir:
        return data_dir
    if glue_dir:
        return os.path.join(glue_dir, spec.name)
    if spec.name == "custom":
        raise UserError("the custom task needs --data_dir (a folder with train.tsv and dev.tsv)")
    return None


def load_split(spec, folder, split, max_samples=None):
    if folder is None:
        return download_examples(spec, split, max_samples)
    return read_examples(spec, folder, split, max_samples)


# ---- the task type's protocol (utils/tasks/__init__.py)

def add_args(parser):
    c = parser.add_argument_group("custom task (--task_name custom)")
    c.add_argument("--text_a_column", help="column of the first text: header name or 0-based index")
    c.add_argument("--text_b_column", help="column of the second text, for sentence pairs")
    c.add_argument("--label_column", help="column of the label")
    c.add_argument("--labels", help="comma-separated label set (default: the distinct labels of train.tsv)")
    c.add_argument("--regression", action="store_true", help="float labels, trained with MSE")
    c.add_argument("--no_header", action="store_true", help="the files have no header row")


def load(name, data_dir, glue_dir, options, train_split="train", max_train_samples=None, max_eval_samples=None,
         with_train=True):
    """(TaskSpec, train examples or None, {dev split: examples}) from the task's folder, or downloaded."""
    spec = get_task(name, dict(options, data_dir=data_dir))
    folder = task_dir(spec, glue_dir, data_dir)
    if folder is not None and not os.path.isdir(folder):
        raise UserError(f"no such directory; expected the {spec.name} folder with train.tsv and dev.tsv", folder)
    train = load_split(spec, folder, train_split, max_train_samples) if with_train else None
    dev = {s: load_split(spec, folder, s, max_eval_samples) for s in spec.dev_splits}
    return spec, train, dev


def read_split(name, data_dir, glue_dir, options, split, labels, model_dir=None):
    """(examples, spec) of one split for prediction; labels: the model's in model_dir (None for regression)."""
    spec = get_task(name, dict(options, data_dir=data_dir))
    examples = load_split(spec, task_dir(spec, glue_dir, data_dir), split)
    if labels is not None and spec.labels is not None and list(spec.labels) != labels:
        raise UserError(f"the model's labels {labels} are not {spec.name}'s {list(spec.labels)}", model_dir)
    return examples, spec


def read_lines(path):
    """A text or two tab-separated texts a line (every line alike), unlabeled."""
    from utils.files import text_lines
    examples, first = [], None  # first: (line number, field count) of the first example, which sets the kind
    for lineno, line in text_lines(path, "a text file with one example per line"):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) > 2:
            raise UserError(f"expected a text or two tab-separated texts, found {len(fields)} fields", path, lineno)
        first = first or (lineno, len(fields))
        if len(fields) != first[1]:
            kinds = {1: "a single text", 2: "a pair (two tab-separated texts)"}
            raise UserError(f"{kinds[len(fields)]}, but line {first[0]} is {kinds[first[1]]}; expected the same "
                            "number of fields on every line (all single texts or all pairs)", path, lineno)
        examples.append(Example(fields[0], fields[1] if len(fields) == 2 else None, 0))
    if not examples:
        raise UserError("no examples; expected at least one non-empty line", path)
    return examples


def read_transfer(path, spec):
    from utils.transfer import read_transfer as read
    return read(path, spec)


def write_predictions(path, examples, logits, features, labels, spec=None):
    """A TSV: index, the text(s), the predicted label and a probability per label (the score for regression)."""
    import numpy as np

    from utils.files import atomic_file
    with atomic_file(path) as f:
        pair = examples[0].text_b is not None
        texts = ["text_a", "text_b"] if pair else ["text"]
        if labels is None:
            f.write("\t".join(["index"] + texts + ["score"]) + "\n")
            for i, (e, row) in enumerate(zip(examples, logits)):
                f.write("\t".join([str(i), e.text_a] + ([e.text_b] if pair else []) + [f"{row[0]:.6f}"]) + "\n")
        else:
            z = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = z / z.sum(axis=1, keepdims=True)
            f.write("\t".join(["index"] + texts + ["prediction"] + [f"prob_{n}" for n in labels]) + "\n")
            for i, (e, p) in enumerate(zip(examples, probs)):
                f.write("\t".join([str(i), e.text_a] + ([e.text_b] if pair else []) + [labels[int(p.argmax())]]
                                  + [f"{x:.6f}" for x in p]) + "\n")


def text(example):
    return example.text_a + "\t" + (example.text_b or "")


def normalise(example):
    """The texts as a transfer row is compared with the labelled and dev rows: spaces and case ignored."""
    return tuple(" ".join((t or "").split()).lower() for t in (example.text_a, example.text_b))


def digest(example):
    return f"{example.text_a}\t{example.text_b or ''}\t{example.label}\n"


encode = None  # no WordPiece encoding of its own: the encoder tokenises texts (and pairs) its own way


def owns(example):
    return isinstance(example, Example)
