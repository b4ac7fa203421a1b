"""Task types: what a kind of example is, how it is read, which logits positions count, how it is scored and how
predictions are written. One module each, all with the same names (the protocol below), registered in
TASK_TYPES; the loop, the losses, the adapters and the scripts look a type up and never ask which one runs.
Encoding stays each adapter's Encoder's (a WordPiece encoder asks the type for `encode`).

A task type module defines:
    HEAD             the model config's distill_head and the logits' shape: sequence [B, C], token [B, L, C],
                     span [B, L, 2]
    KIND             what it is called in messages ("token classification")
    PER_POSITION     whether a BERT-family classifier reads every position's state (else the pooled [CLS] state)
    NAMES            the --task_name values it takes (any case)
    OPTIONS          the flags of its own argument group, e.g. tag_column
    add_args(parser) adds that group (utils/cli.add_task_args)
    SCRIPT           the script fine-tuning its teachers
    SUFFIX           predict.py's output file suffix
    REFUSES          {flag: why} the distillation flags it cannot take
    load(name, data_dir, glue_dir, options, train_split, max_train_samples, max_eval_samples, with_train)
                     -> (spec, train examples or None, {dev split: examples}); the spec has name, labels, num_labels,
                     is_regression, metrics, main_metric, dev_splits, head, view(logits, labels) (the rows of a
                     classification at the positions that count) and compute_metrics(logits, features)
    read_split(name, data_dir, glue_dir, options, split, labels) -> (examples, spec) for predict.py
    read_lines(path) -> examples of a plain text file, one a line (predict.py --input), or None
    read_transfer(path, spec) -> unlabeled examples (task_distill.py --transfer_file), or None
    write_predictions(path, examples, logits, features, labels, spec)
    text(example)    what the teacher reads of an example (label store keys, transfer deduplication)
    digest(example)  the example as a checkpoint's fingerprint hashes it (texts and labels)
    encode(examples, tokenizer, max_seq_length) -> Features: its WordPiece encoding, or None (the encoder's own)
    owns(example)    whether an example is of this type

Adding a task type: utils/tasks/<type>.py with the names above, one entry in TASK_TYPES, and its run_<type>.py
(the fine-tuning script: utils/finetune.py with its flags).
"""
import importlib
import os

from utils.errors import UserError

# head -> module
TASK_TYPES = {"sequence": "utils.tasks.sequence", "token": "utils.tasks.tokens", "span": "utils.tasks.spans"}
FALLBACK = "sequence"  # takes every task name no type lists (another spelling of a GLUE task, or refused by name)


def task_types():
    return [importlib.import_module(m) for m in TASK_TYPES.values()]


def by_head(head):
    """The task type of a model whose config says distill_head `head`."""
    if head not in TASK_TYPES:
        raise UserError(f"unknown distill_head '{head}'; expected one of {', '.join(TASK_TYPES)}")
    return importlib.import_module(TASK_TYPES[head])


def task_type(name):
    """The task type of a --task_name."""
    name = str(name).lower()
    return next((t for t in task_types() if name in {n.lower() for n in t.NAMES}), by_head(FALLBACK))


def type_of(examples):
    """The task type of a list of examples (the sequence type for an empty one)."""
    return next((t for t in task_types() if examples and t.owns(examples[0])), by_head("sequence"))


def option_names():
    """Every task type's own flags: what utils/cli.task_options reads of the namespace."""
    return [name for t in task_types() for name in t.OPTIONS]


def load_task(task_name, data_dir=None, glue_dir=None, options=None, train_split="train", max_train_samples=None,
              max_eval_samples=None, with_train=True):
    """(spec, train examples or None, {dev split: examples}); every row checked before anything is written."""
    return task_type(task_name).load(task_name, data_dir, glue_dir, options or {}, train_split, max_train_samples,
                                     max_eval_samples, with_train)


def check_data_dir(task_name, data_dir, files, form):
    """data_dir is given and is a folder; `files` names what it holds (e.g. "train.txt and dev.txt")."""
    if not data_dir:
        raise UserError(f"--task_name {task_name} needs --data_dir, a folder with {files} ({form})")
    if not os.path.isdir(data_dir):
        raise UserError(f"no such directory; expected a folder with {files}", data_dir)
