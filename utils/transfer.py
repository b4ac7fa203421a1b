"""Transfer sets: unlabeled text the teacher labels for distillation (task_distill.py --transfer_file).
For a token task (NER) a transfer file holds one sentence a line, words split on whitespace.

A transfer file holds one example per line: plain text (a sentence, or two tab-separated texts for a pair task,
optionally followed by a label column, which is ignored), or a TSV in the task's own format (its header, or for
a header-less task such as CoLA its column count), whose labels are ignored too: the student learns these rows
from the teacher only. Rows are cleaned before anything is labelled: a row equal to a dev row (after whitespace
and case normalisation) is dropped, so no dev text leaks into training, and so is a row that repeats a labelled
row or an earlier transfer row.
"""
import math

from utils.errors import UserError

from utils.batches import LABEL_PAD as NO_LABEL  # a transfer row's label: no hard loss reads it
from utils.files import text_lines
from utils.tasks.sequence import Example
NO_TAG = -1  # a transfer sentence's word: distilled (its first piece is a KD position) but no gold tag


def no_label(regression):
    return math.nan if regression else NO_LABEL


def _lines(path):
    """(line number, text) of every non-blank line (utils.files.text_lines: missing files, folders and non-UTF-8
    lines are named); a line with a NUL byte is refused too: the file is binary."""
    for lineno, text in text_lines(path, "a transfer file: UTF-8 text, one example per line"):
        if "\0" in text:
            raise UserError("a NUL byte: this looks like a binary file; expected UTF-8 text, one example per line",
                            path, lineno)
        if text.strip():
            yield lineno, text


def _task_columns(spec, first_fields):
    """Column indices (text_a, text_b) when the file is in the task's own TSV format, else None (plain text)."""
    if spec.header:
        names = [c for c in (spec.text_a, spec.text_b) if c is not None]
        if all(isinstance(c, str) for c in names) and all(c in first_fields for c in names):
            return tuple(None if c is None else first_fields.index(c) for c in (spec.text_a, spec.text_b))
        return None
    n = getattr(spec, "num_columns", None)
    if n and n > (2 if spec.text_b is not None else 1) + 1 and len(first_fields) == n:
        return spec.text_a, spec.text_b
    return None


def read_transfer(path, spec):
    """Examples (label NO_LABEL, or NaN for regression) of one transfer file for a GLUE-style task."""
    texts = 2 if spec.text_b is not None else 1
    what = "two tab-separated texts" if texts == 2 else "one text"
    label = no_label(spec.is_regression)
    out, columns, width = [], None, None
    for lineno, line in _lines(path):
        fields = line.split("\t")
        if width is None:  # the first line decides the format
            columns = _task_columns(spec, [f.strip() for f in fields])
            width = len(fields)
            if columns is not None and spec.header:
                continue  # the task's header line
        if columns is not None:
            if len(fields) != width:
                raise UserError(f"expected {width} tab-separated columns (the task's format), found {len(fields)}",
                                path, lineno)
            a, b = columns
            out.append(Example(fields[a], None if b is None else fields[b], label))
            continue
        if len(fields) not in (texts, texts + 1):
            raise UserError(f"expected {what} per line (optionally a label column after), found {len(fields)} "
                            "tab-separated columns", path, lineno)
        out.append(Example(fields[0], fields[1] if texts == 2 else None, label))
    if not out:
        raise UserError(f"no examples; expected {what} per line", path)
    return out


def read_sentences(path, tags=()):
    """Sentences of a transfer file for a token task: one sentence a line, words split on whitespace, every word
    NO_TAG. A CoNLL-style file (a word and one of the task's `tags` per line) is refused: its lines are not
    sentences."""
    from utils.tasks.tokens import DOCSTART, Sentence
    out = []
    for lineno, line in _lines(path):
        words = line.split()
        if words[0] == DOCSTART or (len(words) == 2 and words[1] in tags and words[1] != "O"):
            raise UserError("a CoNLL-style line (a word and its tag); a transfer file for a token task holds one "
                            "sentence a line, words separated by spaces", path, lineno)
        out.append(Sentence(words, [""] * len(words), [lineno] * len(words), [NO_TAG] * len(words)))
    if not out:
        raise UserError("no sentences; expected one sentence per line", path)
    return out


def clean_transfer(transfer, labelled, dev_sets):
    """Transfer examples without dev rows and without repeats of labelled or earlier transfer rows; prints the
    counts. Returns the kept examples."""
    from utils.tasks import type_of
    normalise = type_of(transfer or labelled).normalise  # what makes two rows the same, by task type
    dev = {normalise(e) for examples in dev_sets.values() for e in examples}
    seen = {normalise(e) for e in labelled}
    kept, leaked, repeats = [], 0, 0
    for e in transfer:
        key = normalise(e)
        if key in dev:
            leaked += 1
        elif key in seen:
            repeats += 1
        else:
            seen.add(key)
            kept.append(e)
    print(f"transfer set: {len(transfer):,} rows read; {leaked:,} equal to a dev row and {repeats:,} repeats dropped; "
          f"{len(kept):,} kept")
    return kept


def load_transfer(paths, spec, labelled, dev_sets):
    """Every transfer file's examples as the task type reads them (texts for sequence classification, sentences
    for token classification), cleaned (clean_transfer); a type that reads none is refused."""
    from utils.tasks import by_head
    kind = by_head(spec.head)
    if kind.read_transfer is None:
        raise UserError(kind.REFUSES["transfer_file"])
    rows = [e for path in paths for e in kind.read_transfer(path, spec)]
    return clean_transfer(rows, labelled, dev_sets)
