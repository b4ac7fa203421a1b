"""Unlabeled text for task-agnostic distillation, streamed: plain text files (one sentence or paragraph a line) and
the text columns of GLUE/custom TSVs, read in blocks of lines, tokenised a block at a time and cut into windows
of at most max_seq_length tokens. Nothing but per-block counts and window lengths (2 bytes a window) stays in
memory, so a corpus of any size trains in the memory of one block.

A first pass reads everything once: it checks every line (a bad line is an error naming file and line before
any training), records where each block starts and its windows' lengths, and sets aside every
`held_out_every`-th text (up to `max_held_out`) as the held-out set. Step N's batch is then a function of
(seed, N): the block order of each epoch and the length-bucketed batches inside a block are seeded, so a resumed
run reads exactly the batches an uninterrupted one would.
"""
import os

import numpy as np

from utils.batches import Features, Plan, train_batches
from utils.errors import UserError
from utils.tasks.sequence import GLUE_TASKS, _key
from utils.wordpiece import FastWordPiece

TEXT_COLUMNS = ("sentence", "sentence1", "sentence2", "question", "question1", "question2", "#1 String",
                "#2 String", "text", "text_a", "text_b")


def _decode(raw, path, lineno):
    if b"\x00" in raw:
        raise UserError("a NUL byte: this looks like a binary file; expected UTF-8 text, one text a line", path,
                        lineno)
    try:
        return raw.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text; expected UTF-8 text, one text a line", path, lineno) from None


def _text_columns(path, header):
    columns = [i for i, name in enumerate(header.split("\t")) if name in TEXT_COLUMNS]
    if not columns:
        raise UserError(f"no text column in the header; expected one of {', '.join(TEXT_COLUMNS)} (a GLUE or "
                        "custom TSV with a header)", path, 1)
    return columns


def _glue_columns(path):
    """The text columns of a headerless GLUE file (CoLA: the 4th), known from its folder's name; else None."""
    spec = GLUE_TASKS.get(_key(os.path.basename(os.path.dirname(os.path.abspath(path)))))
    if spec is None or spec.header:
        return None
    return [c for c in (spec.text_a, spec.text_b) if c is not None]


def read_lines(path, offset=0, first_line=1, count=None):
    """(line number, byte offset, [texts]) per line from byte `offset`; a TSV's header is read at offset 0 (a
    headerless GLUE file, CoLA, is recognised by its folder's name)."""
    tsv = path.endswith(".tsv")
    with open(path, "rb") as f:
        head = f.read(8192)
        if b"\x00" in head:  # an image, an archive, a model file passed by mistake
            raise UserError("a NUL byte: this looks like a binary file; expected UTF-8 text, one text a line", path,
                            head[:head.index(b"\x00")].count(b"\n") + 1)
        f.seek(0)
        columns = _glue_columns(path) if tsv else None
        if tsv and columns is None:
            header = f.readline()
            columns = _text_columns(path, _decode(header, path, 1))
            if offset == 0:
                offset, first_line = f.tell(), 2
        f.seek(offset)
        lineno, done = first_line, 0
        while count is None or done < count:
            start = f.tell()
            raw = f.readline()
            if not raw:
                break
            line = _decode(raw, path, lineno)
            if tsv:
                fields = line.split("\t")
                if len(fields) <= max(columns):
                    raise UserError(f"{len(fields)} fields; the header names a text column at position "
                                    f"{max(columns) + 1}", path, lineno)
                texts = [fields[c].strip() for c in columns]
            else:
                texts = [line.strip()]
            yield lineno, start, [t for t in texts if t]
            lineno, done = lineno + 1, done + 1


def windows(tokenizer, texts, max_seq_length):
    """[CLS] + at most max_seq_length - 2 word pieces + [SEP] per window; a long text becomes several windows."""
    width = max_seq_length - 2
    out = []
    fast = FastWordPiece.of(tokenizer)  # the tokenizer's own ids, faster
    pieces = map(fast.ids, texts) if fast is not None else tokenizer(
        texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    for ids in pieces:
        for start in range(0, max(len(ids), 1), width):
            out.append(np.asarray([tokenizer.cls_token_id] + ids[start:start + width] + [tokenizer.sep_token_id],
                                  dtype=np.int64))
    return out


def _features(ids, pad_id):
    return Features({"input_ids": ids, "token_type_ids": [np.zeros_like(x) for x in ids]},
                    np.zeros(len(ids), dtype=np.int64), {"input_ids": pad_id, "token_type_ids": 0})


class Corpus:
    """Blocks of lines over several files; `held_out` is the held-out set's Features."""

    def __init__(self, paths, tokenizer, max_seq_length, block_lines=2048, held_out_every=100, max_held_out=2000):
        from tqdm import tqdm
        self.tokenizer, self.max_seq_length = tokenizer, max_seq_length
        self.every, self.max_held_out = held_out_every, max_held_out
        self.blocks = []  # (path, byte offset, first line, lines, first text index, window lengths)
        held_out, texts_seen = [], 0
        for path in paths:
            if os.path.isdir(path) or not os.path.isfile(path):
                raise UserError("is a directory" if os.path.isdir(path) else "no such file", path)
            pending, start = [], None
            for lineno, offset, texts in tqdm(read_lines(path), desc=f"scan {os.path.basename(path)}",
                                              unit="line", leave=False, mininterval=1):
                if start is None:
                    start = (offset, lineno, texts_seen)
                pending.append(texts)
                texts_seen += len(texts)
                if len(pending) == block_lines:
                    held_out += self._add_block(path, start, pending)
                    pending, start = [], None
            if pending:
                held_out += self._add_block(path, start, pending)
        if not any(len(b[5]) for b in self.blocks):
            raise UserError("no text to train on; expected non-empty lines", paths[0])
        self.held_out = _features(held_out[:max_held_out], tokenizer.pad_token_id)
        self.texts = texts_seen
        self._cached = (None, None)

    def _split(self, first_index, texts):
        """(training texts, held-out texts) of consecutive texts numbered from first_index."""
        train, held = [], []
        for i, text in enumerate(texts, first_index):
            (held if i % self.every == self.every - 1 and i // self.every < self.max_held_out else train).append(text)
        return train, held

    def _add_block(self, path, start, lines):
        offset, lineno, first_index = start
        train, held = self._split(first_index, [t for texts in lines for t in texts])
        lengths = np.asarray([len(w) for w in windows(self.tokenizer, train, self.max_seq_length)] if train else [],
                             dtype=np.uint16)
        self.blocks.append((path, offset, lineno, len(lines), first_index, lengths))
        return windows(self.tokenizer, held, self.max_seq_length) if held else []

    def block_features(self, b):
        """Block b's training windows, tokenised again from the file (the last block read is kept)."""
        if self._cached[0] != b:
            path, offset, lineno, lines, first_index, _ = self.blocks[b]
            texts = [t for _, _, found in read_lines(path, offset, lineno, lines) for t in found]
            train, _ = self._split(first_index, texts)
            self._cached = (b, _features(windows(self.tokenizer, train, self.max_seq_length) if train else [],
                                         self.tokenizer.pad_token_id))
        return self._cached[1]


class CorpusPlan:
    """Step (1-based) -> (block, window indices): each epoch visits the blocks in a seeded order and each block's
    windows in seeded, length-bucketed batches; batch counts come from the first pass, so no block is read to
    plan."""

    def __init__(self, corpus, batch_size, seed):
        self.corpus, self.batch_size, self.seed = corpus, batch_size, seed
        self._last = (None, None)
        self.counts = [len(self._batches(b, 0)) for b in range(len(corpus.blocks))]
        self.steps_per_epoch = sum(self.counts)
        if self.steps_per_epoch == 0:
            raise UserError("the corpus makes no batches")
        self._epoch = (None, None)

    def _batches(self, b, epoch):
        if self._last[0] != (b, epoch):
            lengths = self.corpus.blocks[b][5]
            self._last = ((b, epoch), train_batches(lengths, self.batch_size, self.seed * 1000003 + b, epoch)
                          if len(lengths) else [])
        return self._last[1]

    def at(self, step):
        epoch, position = divmod(step - 1, self.steps_per_epoch)
        if self._epoch[0] != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.counts))
            self._epoch = (epoch, order)
        for b in self._epoch[1]:
            if position < self.counts[b]:
                return b, self._batches(b, epoch)[position]
            position -= self.counts[b]
        raise AssertionError("step beyond the epoch")  # cannot happen: position < steps_per_epoch

    total_steps = Plan.total_steps  # the same rule: --max_steps, else epochs x steps_per_epoch
