"""Examples -> token ids (once per split) -> length-bucketed, dynamically padded batches.

Random batches of SST-2 are two-thirds padding (mean length 13, padded to 40); sorting inside large
shuffled chunks keeps batches random in content while making them nearly pad-free.
"""
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm


@dataclass
class Features:
    input_ids: list  # one int array per example, unpadded
    token_type_ids: list
    labels: np.ndarray  # int64 class ids, or float32 scores for regression

    def __len__(self):
        return len(self.input_ids)

    @property
    def lengths(self):
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def tokenize(examples, tokenizer, max_seq_length, regression=False, desc="tokenize", chunk=2048):
    """Tokenise every example once; pairs are truncated longest-first to fit max_seq_length."""
    ids, types = [], []
    for start in tqdm(range(0, len(examples), chunk), desc=desc, unit="chunk", leave=False,
                      disable=len(examples) < 4 * chunk):
        part = examples[start:start + chunk]
        text_b = [e.text_b for e in part] if part[0].text_b is not None else None
        enc = tokenizer([e.text_a for e in part], text_pair=text_b, max_length=max_seq_length, truncation=True,
                        return_attention_mask=False)
        ids.extend(np.asarray(x, dtype=np.int64) for x in enc["input_ids"])
        types.extend(np.asarray(x, dtype=np.int64) for x in enc["token_type_ids"])
    labels = np.asarray([e.label for e in examples], dtype=np.float32 if regression else np.int64)
    return Features(ids, types, labels)


def train_batches(lengths, batch_size, seed, epoch, bucket=True, chunk_batches=100, num_shards=1, shard=0):
    """The batches (index arrays) of one epoch, fixed by (seed, epoch) so a resumed run sees the same ones.

    Bucketing: shuffle, sort by length inside chunks of `chunk_batches` batches, cut, shuffle the batches.
    With shards (data parallel), each rank takes every num_shards-th batch of the same epoch plan.
    """
    rng = np.random.RandomState((seed * 1000003 + epoch) % (2 ** 32))
    order = rng.permutation(len(lengths))
    batches = []
    step = batch_size * chunk_batches if bucket else len(order)
    for start in range(0, len(order), step):
        part = order[start:start + step]
        if bucket:
            part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    if bucket:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    usable = len(batches) - len(batches) % num_shards
    return batches[shard:usable:num_shards]


def eval_batches(lengths, batch_size):
    """Batches sorted by length (least padding); callers put results back with the returned order."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(features, index, pad_token_id=0):
    """Pad one batch to its longest example: numpy arrays for input_ids, token_type_ids, attention_mask, labels."""
    seqs = [features.input_ids[i] for i in index]
    width = max(len(s) for s in seqs)
    input_ids = np.full((len(seqs), width), pad_token_id, dtype=np.int64)
    token_type_ids = np.zeros((len(seqs), width), dtype=np.int64)
    attention_mask = np.zeros((len(seqs), width), dtype=np.float32)
    for row, i in enumerate(index):
        n = len(features.input_ids[i])
        input_ids[row, :n] = features.input_ids[i]
        token_type_ids[row, :n] = features.token_type_ids[i]
        attention_mask[row, :n] = 1.0
    return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask,
            "labels": features.labels[index]}
