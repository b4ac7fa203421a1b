"""Token classification (NER): CoNLL-style files -> word-aligned WordPiece windows -> per-token labels -> tags
back on every word -> entity-level precision, recall and F1.

File format: one token per line with its tag (`token<TAB or spaces>tag`; `--tag_column` picks the tag's column
in multi-column CoNLL-2003 files, default the last), a blank line between sentences, `-DOCSTART-` lines skipped,
CRLF and a BOM tolerated. The label of a word sits on its first word piece; its other pieces, [CLS], [SEP]
and padding carry IGNORE, which the loss, the distillation mask and the metric skip. A sentence longer than
max_seq_length is cut into windows of whole words, so every word gets a prediction.
"""
from dataclasses import dataclass, field

import numpy as np

from utils.batches import LABEL_PAD as IGNORE  # label of positions that are not a word's first piece
from utils.batches import Features
from utils.errors import UserError
DOCSTART = "-DOCSTART-"


@dataclass
class Sentence:
    words: list
    tags: list
    lines: list = field(default_factory=list)  # the file line of each word, for errors


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


def check_tags(sentences, labels, path):
    known = set(labels)
    for s in sentences:
        for tag, line in zip(s.tags, s.lines):
            if tag not in known:
                raise UserError(f"tag '{tag}' is not among the training tags ({', '.join(labels)})", path, line)


@dataclass
class Window:
    sentence: int  # index of the sentence
    words: list  # indices of the words it covers, in order
    first_pieces: list  # position in the window of each of those words' first piece


def encode(sentences, tokenizer, labels, max_seq_length):
    """(Features with per-token labels, [Window]): each sentence cut into windows of whole words that fit
    max_seq_length with [CLS] and [SEP]; a word longer than a whole window keeps its first pieces."""
    label_id = {t: i for i, t in enumerate(labels)}
    width = max_seq_length - 2
    ids, tags, windows = [], [], []
    for si, s in enumerate(sentences):
        pieces = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w)) or [tokenizer.unk_token_id]
                  for w in s.words]
        start = 0
        while start < len(s.words):
            row, row_tags, words, firsts = [tokenizer.cls_token_id], [IGNORE], [], []
            end = start
            while end < len(s.words) and (len(row) - 1 + len(pieces[end]) <= width or end == start):
                word_pieces = pieces[end][:width]
                firsts.append(len(row))
                row += word_pieces
                row_tags += [label_id.get(s.tags[end], IGNORE)] + [IGNORE] * (len(word_pieces) - 1)
                words.append(end)
                end += 1
            ids.append(np.asarray(row + [tokenizer.sep_token_id], dtype=np.int64))
            tags.append(np.asarray(row_tags + [IGNORE], dtype=np.int64))
            windows.append(Window(si, words, firsts))
            start = end
    features = Features({"input_ids": ids, "token_type_ids": [np.zeros_like(x) for x in ids]},
                        _object_array(tags), {"input_ids": tokenizer.pad_token_id, "token_type_ids": 0})
    return features, windows


def _object_array(rows):
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


def decode(logits_per_window, windows, sentences, labels):
    """The predicted tag of every word of every sentence, from each window's [length, labels] logits."""
    predicted = [[None] * len(s.words) for s in sentences]
    for logits, w in zip(logits_per_window, windows):
        for word, position in zip(w.words, w.first_pieces):
            predicted[w.sentence][word] = labels[int(np.argmax(logits[position]))]
    return predicted


def entity_scores(predicted, sentences):
    """Entity-level precision, recall and F1 over all sentences (conlleval semantics, via seqeval)."""
    from seqeval.metrics import f1_score, precision_score, recall_score
    gold = [s.tags for s in sentences]
    return {"precision": float(precision_score(gold, predicted)), "recall": float(recall_score(gold, predicted)),
            "f1": float(f1_score(gold, predicted))}
