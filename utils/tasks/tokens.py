"""Token classification (NER): CoNLL-style files -> word-aligned WordPiece windows -> per-token labels -> tags
back on every word -> entity-level precision, recall and F1.

File format: one token per line with its tag (`token<TAB or spaces>tag`; `--tag_column` picks the tag's column
in multi-column CoNLL-2003 files, default the last), a blank line between sentences, `-DOCSTART-` lines skipped,
CRLF and a BOM tolerated. The label of a word sits on its first word piece; its other pieces, [CLS], [SEP]
and padding carry IGNORE, which the loss, the distillation mask and the metric skip. A sentence longer than
max_seq_length is cut into windows of whole words (consecutive feature rows sharing one group), so every word
gets a prediction and the metric sees whole sentences again.
"""
import os
from dataclasses import dataclass, field

import numpy as np

from utils.batches import LABEL_PAD as IGNORE  # label of positions that are not a word's first piece
from utils.batches import Features
from utils.errors import UserError
from utils.wordpiece import piece_ids

DOCSTART = "-DOCSTART-"
SPLIT_FILE = "{}.txt"

# the task type's protocol (utils/tasks/__init__.py)
HEAD = "token"  # per-token logits [batch, length, labels]
PER_POSITION = True  # the classifier reads every position's final state
KIND = "token classification"
NAMES = ("conll", "ner")
OPTIONS = ("tag_column",)
SCRIPT = "run_ner.py"
SUFFIX = "txt"
REFUSES = {"use_aug": "--use_aug works for sequence classification; a token task (conll) takes more sentences as "
                      "--transfer_file",
           "multitask": "multitask_distill.py distils sequence-classification tasks"}


@dataclass
class Sentence:
    words: list
    tags: list
    lines: list = field(default_factory=list)  # the file line of each word, for errors
    label_ids: list = field(default_factory=list)  # tag ids in the task's tag set (attach_labels)


@dataclass(frozen=True)
class TokenTask:
    """The spec of a token-classification task, read by the scripts like a GLUE TaskSpec."""
    labels: tuple  # the training tags, "O" first
    name: str = "conll"
    metrics: tuple = ("precision", "recall", "f1")
    main_metric: str = "f1"
    dev_splits: tuple = ("dev",)
    head: str = HEAD
    is_regression: bool = False

    @property
    def num_labels(self):
        return len(self.labels)

    @staticmethod
    def view(logits, labels):
        from utils.losses import token_view
        return token_view(logits, labels)

    def compute_metrics(self, logits, features):
        predicted, gold = word_labels(logits, features)
        names = list(self.labels)
        return entity_scores([[names[i] for i in p] for p in predicted], [[names[i] for i in g] for g in gold])


def read_conll(path, tag_column=-1):
    """Sentences of a CoNLL-style file; a line without a tag column is an error naming file and line."""
    from utils.files import text_lines
    sentences, current = [], Sentence([], [], [])
    for lineno, line in text_lines(path, "a CoNLL-style file (token and tag per line, a blank line between "
                                         "sentences)"):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            if current.words:
                sentences.append(current)
            current = Sentence([], [], [])
            continue
        column = tag_column % len(fields) if -len(fields) <= tag_column < len(fields) else None
        if len(fields) < 2 or not column:  # column 0 is the token itself
            raise UserError(f"expected a token and its tag (column {tag_column}), found {len(fields)} "
                            f"field{'s' if len(fields) != 1 else ''}", path, lineno)
        current.words.append(fields[0])
        current.tags.append(fields[tag_column])
        current.lines.append(lineno)
    if current.words:
        sentences.append(current)
    if not sentences:
        raise UserError("no sentences; expected token and tag lines", path)
    return sentences


def tag_set(sentences):
    """The training tags: "O" first (always: outside any entity is never an unknown tag), then the rest sorted
    by entity type, B- before I-."""
    found = {t for s in sentences for t in s.tags}
    return ["O"] + sorted(found - {"O"}, key=lambda t: (t[2:], t[:2]))


def attach_labels(sentences, labels, path):
    """Each sentence's tag ids; a tag outside the training tags is an error naming its line."""
    known = {t: i for i, t in enumerate(labels)}
    for s in sentences:
        for tag, line in zip(s.tags, s.lines):
            if tag not in known:
                raise UserError(f"tag '{tag}' is not among the training tags ({', '.join(labels)})", path, line)
        s.label_ids = [known[t] for t in s.tags]
    return sentences


def add_args(parser):
    t = parser.add_argument_group("token classification (--task_name conll: --data_dir with train.txt, dev.txt)")
    t.add_argument("--tag_column", type=int, default=-1,
                   help="the tag's column in CoNLL-style lines (0-based; negative counts from the end; default -1, "
                        "the last)")


def load(name, data_dir, glue_dir, options, train_split="train", max_train_samples=None, max_eval_samples=None,
         with_train=True):
    """(TokenTask, train sentences or None, {"dev": sentences}) from data_dir's train.txt and dev.txt (the training
    sentences set the tags, so they are read either way)."""
    from utils.tasks import check_data_dir
    check_data_dir(name, data_dir, "train.txt and dev.txt", "CoNLL-style: token and tag per line")
    tag_column = options.get("tag_column", -1)
    paths = {split: os.path.join(data_dir, SPLIT_FILE.format(split)) for split in (train_split, "dev")}
    train = read_conll(paths[train_split], tag_column)
    spec = TokenTask(tuple(tag_set(train)), name=str(name).lower())
    dev = read_conll(paths["dev"], tag_column)
    attach_labels(train, spec.labels, paths[train_split])
    attach_labels(dev, spec.labels, paths["dev"])
    return spec, train[:max_train_samples] if with_train else None, {"dev": dev[:max_eval_samples]}


def read_split(name, data_dir, glue_dir, options, split, labels, model_dir=None):
    """(sentences, spec) of one split for prediction, tagged in the model's tag set `labels`."""
    if not data_dir:
        raise UserError(f"--task_name {name} needs --data_dir (a folder with {split}.txt)")
    path = os.path.join(data_dir, SPLIT_FILE.format(split))
    sentences = attach_labels(read_conll(path, options.get("tag_column", -1)), labels, path)
    return sentences, TokenTask(tuple(labels), name=name.lower())


def read_transfer(path, spec):
    from utils.transfer import read_sentences
    return read_sentences(path, spec.labels)


def write_predictions(path, examples, logits, features, labels, spec=None):
    """CoNLL-style lines: word, predicted tag (and the file's tag when it had tags)."""
    write_tagged(path, examples, word_labels(logits, features)[0], labels, gold=spec is not None)


def text(sentence):
    return "\x1f".join(sentence.words)


def normalise(sentence):
    """A sentence as a transfer row is compared with the labelled and dev rows: the same words, case ignored."""
    return (" ".join(sentence.words).lower(),)


def digest(sentence):
    return "\t".join(sentence.words) + "\n" + "\t".join(sentence.tags) + "\n"


def owns(example):
    return isinstance(example, Sentence)


def read_lines(path):
    """Plain text for prediction: one sentence a line, words split on whitespace (tags unknown: "O")."""
    from utils.files import text_lines
    out = [Sentence(line.split(), ["O"] * len(line.split()), [lineno] * len(line.split()),
                    [0] * len(line.split())) for lineno, line in text_lines(path, "a text file, one sentence a "
                                                                                  "line") if line.strip()]
    if not out:
        raise UserError("no sentences; expected at least one non-empty line", path)
    return out


def encode(sentences, tokenizer, max_seq_length):
    """Features with per-token labels, one row per window: each sentence cut into windows of whole words that
    fit max_seq_length with [CLS] and [SEP] (a word longer than a whole window keeps its first pieces);
    features.groups holds each row's sentence."""
    width = max_seq_length - 2
    ids, tags, groups = [], [], []
    word_ids = piece_ids(tokenizer)
    for si, s in enumerate(sentences):
        pieces = [word_ids(w) or [tokenizer.unk_token_id] for w in s.words]
        start = 0
        while start < len(s.words):
            row, row_tags, end = [tokenizer.cls_token_id], [IGNORE], start
            while end < len(s.words) and (len(row) - 1 + len(pieces[end]) <= width or end == start):
                word_pieces = pieces[end][:width]
                row += word_pieces
                row_tags += [s.label_ids[end]] + [IGNORE] * (len(word_pieces) - 1)
                end += 1
            ids.append(np.asarray(row + [tokenizer.sep_token_id], dtype=np.int64))
            tags.append(np.asarray(row_tags + [IGNORE], dtype=np.int64))
            groups.append(si)
            start = end
    labels = np.empty(len(tags), dtype=object)
    labels[:] = tags
    return Features({"input_ids": ids, "token_type_ids": [np.zeros_like(x) for x in ids]}, labels,
                    {"input_ids": tokenizer.pad_token_id, "token_type_ids": 0}, groups=np.asarray(groups))


def word_labels(logits, features):
    """(predicted, gold) label ids of every word, one list per sentence: the argmax of each window's logits
    ([length, labels] per row) at its words' first pieces, windows of a sentence joined in order."""
    predicted, gold = [], []
    last = None
    for row, group in enumerate(features.groups):
        keep = features.labels[row] != IGNORE
        if group != last:
            predicted.append([])
            gold.append([])
            last = group
        predicted[-1].extend(np.asarray(logits[row])[keep].argmax(-1).tolist())
        gold[-1].extend(features.labels[row][keep].tolist())
    return predicted, gold


def entity_scores(predicted, gold):
    """Entity-level precision, recall and F1 over all sentences (conlleval semantics, via seqeval); both are
    lists of tag lists."""
    from seqeval.metrics import f1_score, precision_score, recall_score
    return {"precision": float(precision_score(gold, predicted)), "recall": float(recall_score(gold, predicted)),
            "f1": float(f1_score(gold, predicted))}


def write_tagged(path, sentences, predicted, labels, gold=True):
    """CoNLL-style predictions: word and predicted tag per line (then the file's tag, when it had tags), a
    blank line after each sentence."""
    from utils.files import atomic_file
    with atomic_file(path) as f:
        for s, p in zip(sentences, predicted):
            for word, tag, label in zip(s.words, s.tags, p):
                f.write(f"{word}\t{labels[label]}" + (f"\t{tag}\n" if gold else "\n"))
            f.write("\n")
