"""The same WordPiece ids as PaddleNLP's BertTokenizer, for plain-ASCII text, 11-22x faster (docs/BENCHMARKS.md).

PaddleNLP's BertTokenizer is pure Python and walks every character several times (cleaning, accents, punctuation,
Chinese characters): on this 2-core CPU it tokenises about 2,000 SST-2 sentences a second, so each student process
of the demo spent ~15 s encoding 22,000 rows and a 200k-row transfer set cost minutes per process.

For text made only of printable ASCII, tabs and newlines, every one of those passes has a fixed, simple answer:
nothing to clean or strip, no Chinese characters, and the punctuation and symbol characters are exactly the
printable characters that are neither letters, digits nor spaces. So basic tokenisation is one regular expression
(runs of letters and digits, or one punctuation character), and the greedy longest-match WordPiece of each word is
cached, since words repeat; a special token written in the text ("[MASK]") is kept whole where the tokenizer keeps
it. Any other row (accents, emoji, control characters) goes through the tokenizer itself, so the ids are the
tokenizer's own for every row; tests compare the two on real SST-2 and on edge cases.
"""
import re

import numpy as np

WORD = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")
PLAIN = re.compile(r"[ -~\t\n\r]*")  # printable ASCII, tab, newline, carriage return
# what the fast path assumes of the tokenizer's class: BertTokenizer's own methods, none overridden
SAME_AS_BERT = ("tokenize", "_tokenize", "prepare_for_tokenization", "build_inputs_with_special_tokens",
                "create_token_type_ids_from_sequences", "num_special_tokens_to_add", "truncate_sequences",
                "_convert_token_to_id", "convert_tokens_to_ids")


class FastWordPiece:
    """Encodes rows as `tokenizer(text_a, text_pair=text_b, max_length=..., truncation=True)` would."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.vocab = tokenizer.get_vocab()
        self.lower = bool(tokenizer.do_lower_case)
        self.unk = self.vocab[tokenizer.unk_token]
        self.cls, self.sep = self.vocab[tokenizer.cls_token], self.vocab[tokenizer.sep_token]
        self.max_chars = tokenizer.wordpiece_tokenizer.max_input_chars_per_word
        # Special tokens written in the text ("[MASK]" from Tang et al.'s augmentation) take the tokenizer's two
        # routes: its no-split tokens are cut out of the text wherever they occur (longest first, case as written);
        # any special token that is a whole whitespace-separated word skips lowercasing and punctuation splitting
        no_split = sorted({t for t in tokenizer.unique_no_split_tokens if t}, key=len, reverse=True)
        self.no_split_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in no_split}
        self.no_split = re.compile("(" + "|".join(map(re.escape, no_split)) + ")") if no_split else None
        self.never_split = {t for t in tokenizer.all_special_tokens if t}
        self.any_special = re.compile("|".join(map(re.escape, sorted(self.never_split, key=len, reverse=True)))) \
            if self.never_split else None
        self.words = {}

    @classmethod
    def of(cls, tokenizer):
        """A FastWordPiece for a PaddleNLP BertTokenizer (or a subclass that overrides none of the methods the
        encoding goes through) with basic tokenisation on and right-side truncation; None for anything else."""
        try:
            from paddlenlp.transformers import BertTokenizer
        except ImportError:
            return None
        if not isinstance(tokenizer, BertTokenizer) or not tokenizer.do_basic_tokenize:
            return None
        if any(getattr(type(tokenizer), m, None) is not getattr(BertTokenizer, m, None) for m in SAME_AS_BERT):
            return None
        if getattr(tokenizer, "truncation_side", "right") != "right" or tokenizer.basic_tokenizer.never_split:
            return None
        if not set(tokenizer.unique_no_split_tokens) <= set(tokenizer.all_special_tokens):
            return None  # added tokens matched in lowercased text: left to the tokenizer
        return cls(tokenizer)

    def plain(self, text):
        """Whether the fast path's ids are the tokenizer's for this text."""
        return PLAIN.fullmatch(text) is not None

    def pieces(self, word):
        """Greedy longest-match WordPiece ids of one word (a run of letters and digits, or one punctuation mark)."""
        ids = self.words.get(word)
        if ids is None:
            ids = self._pieces(word)
            self.words[word] = ids
        return ids

    def _pieces(self, word):
        if len(word) > self.max_chars:
            return [self.unk]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    out.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return out

    def text_ids(self, text):
        parts = self.no_split.split(text) if self.no_split is not None else [text]
        ids = []
        for i, part in enumerate(parts):  # text, no-split token, text, ...
            if i % 2:
                ids.append(self.no_split_ids[part])
            elif self.any_special is None or self.any_special.search(part) is None:
                self.add_words(ids, part)
            else:
                for token in part.split():
                    if token in self.never_split:
                        ids.extend(self.pieces(token))  # as written, looked up whole
                    else:
                        self.add_words(ids, token)
        return ids

    def add_words(self, ids, text):
        for word in WORD.findall(text.lower() if self.lower else text):
            ids.extend(self.pieces(word))

    def ids(self, text):
        """tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)): the word pieces' ids, no special tokens."""
        if self.plain(text):
            return self.text_ids(text)
        return self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(text))

    def encode(self, texts_a, texts_b, max_length):
        """(input_ids, token_type_ids) lists of int64 arrays, one per row; rows that are not plain ASCII are
        encoded by the tokenizer itself, and so is every row when max_length leaves no room to truncate into
        (below [CLS] a [SEP] b [SEP] with a token each)."""
        n = len(texts_a)
        ids, types = [None] * n, [None] * n
        slow = []
        for i in range(n):
            a, b = texts_a[i], None if texts_b is None else texts_b[i]
            if max_length < 4 or not (self.plain(a) and (b is None or self.plain(b))):
                slow.append(i)
                continue
            ids[i], types[i] = self.join(self.text_ids(a), None if b is None else self.text_ids(b), max_length)
        if slow:
            enc = self.tokenizer([texts_a[i] for i in slow], text_pair=None if texts_b is None else [
                texts_b[i] for i in slow], max_length=max_length, truncation=True, return_attention_mask=False)
            for j, i in enumerate(slow):
                ids[i] = np.asarray(enc["input_ids"][j], dtype=np.int64)
                types[i] = np.asarray(enc["token_type_ids"][j], dtype=np.int64)
        return ids, types

    def join(self, a, b, max_length):
        """[CLS] a [SEP] (b [SEP]), truncated longest-first as PaddleNLP does: one token at a time from the longer
        side, from the second on a tie, from the right."""
        over = len(a) + (0 if b is None else len(b)) + (2 if b is None else 3) - max_length
        if over > 0:
            if b is None:
                a = a[:len(a) - over]
            else:
                # removing one at a time from the longer (b on a tie) ends with the lengths below
                la, lb = len(a), len(b)
                for _ in range(over):
                    if la > lb:
                        la -= 1
                    else:
                        lb -= 1
                a, b = a[:la], b[:lb]
        if b is None:
            return (np.asarray([self.cls] + a + [self.sep], dtype=np.int64),
                    np.zeros(len(a) + 2, dtype=np.int64))
        return (np.asarray([self.cls] + a + [self.sep] + b + [self.sep], dtype=np.int64),
                np.asarray([0] * (len(a) + 2) + [1] * (len(b) + 1), dtype=np.int64))


def piece_ids(tokenizer):
    """text -> its word pieces' ids (no special tokens), through the fast path when the tokenizer allows it."""
    fast = FastWordPiece.of(tokenizer)
    if fast is not None:
        return fast.ids
    return lambda text: tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
