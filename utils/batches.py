"""Features (token ids once per split) -> length-bucketed plans -> dynamically padded batches.

Random batches of SST-2 are two-thirds padding (mean length 13, padded to 40); sorting inside large
shuffled chunks keeps batches random in content while making them nearly pad-free.

Features are model-agnostic: named columns of int arrays (a BERT's input_ids/token_type_ids, a word model's
ids_a/ids_b) with a pad value each. A distillation batch carries each side's columns for the same examples:
{"S": student inputs, "T": teacher inputs (the same dict when both tokenise alike), "labels"}.
"""
from dataclasses import dataclass, field

import numpy as np

from utils.errors import UserError


LABEL_PAD = -100  # a per-token label no loss, mask or metric reads (padding, [CLS], a word's later pieces)


@dataclass
class Features:
    columns: dict  # column name -> one int64 array per example, unpadded
    labels: np.ndarray  # int64 class ids, or float32 scores for regression
    pads: dict = field(default_factory=dict)  # column name -> pad value (default 0)
    groups: np.ndarray = None  # example of each row when an example spans several rows (token-task windows)
    extra: dict = None  # what a task type needs to turn rows back into answers (span extraction)

    def __len__(self):
        return len(self.labels)

    @property
    def lengths(self):
        """Tokens per example over all columns: what a batch's padded width costs."""
        return sum(np.fromiter((len(x) for x in col), dtype=np.int64, count=len(col))
                   for col in self.columns.values())


def subset(features, index):
    """The rows `index` of features, as features (labels and every column; groups and extra are dropped)."""
    return Features({name: [col[i] for i in index] for name, col in features.columns.items()},
                    features.labels[index], dict(features.pads))


def labels_array(examples, regression=False):
    return np.asarray([e.label for e in examples], dtype=np.float32 if regression else np.int64)


def pad(seqs, value, dtype=np.int64):
    """[len(seqs), longest] array of seqs padded at the end with value (at least one column wide)."""
    out = np.full((len(seqs), max(1, max(len(s) for s in seqs))), value, dtype=dtype)
    for row, s in enumerate(seqs):
        out[row, :len(s)] = s
    return out


def collate(features, index):
    """One batch of one side: every column padded to the batch's longest example, plus the labels (per-token
    labels, an object array of rows, padded with LABEL_PAD: positions no loss or metric reads)."""
    batch = {name: pad([col[i] for i in index], features.pads.get(name, 0)) for name, col in features.columns.items()}
    labels = features.labels[index]
    batch["labels"] = pad(list(labels), LABEL_PAD) if labels.dtype == object else labels
    return batch


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


class Plan:
    """Step (1-based) -> the example indices of its batch. Each epoch's plan is a function of (seed, epoch),
    computed once when the epoch is reached, so any step's batch can be recomputed (exact resume)."""

    def __init__(self, lengths, batch_size, seed, bucket=True, num_shards=1, shard=0):
        self.args = (lengths, batch_size, seed)
        self.kwargs = dict(bucket=bucket, num_shards=num_shards, shard=shard)
        self._epoch, self._batches = None, None
        self.steps_per_epoch = len(self.epoch(0))
        if self.steps_per_epoch == 0:
            raise UserError(f"{len(lengths)} training examples make fewer batches of {batch_size} than there are "
                            f"processes ({num_shards}); use a smaller --batch_size or fewer processes")

    def epoch(self, epoch):
        if epoch != self._epoch:
            lengths, batch_size, seed = self.args
            self._epoch, self._batches = epoch, train_batches(lengths, batch_size, seed, epoch, **self.kwargs)
        return self._batches

    def index(self, step):
        epoch, position = divmod(step - 1, self.steps_per_epoch)
        return self.epoch(epoch)[position]

    def total_steps(self, num_train_epochs, max_steps=-1):
        import math
        return max_steps if max_steps > 0 else math.ceil(num_train_epochs * self.steps_per_epoch)


def eval_batches(lengths, batch_size):
    """Batches sorted by length (least padding); callers put results back with the returned order."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class Sides:
    """The same examples as the student and the teacher(s) read them, bucketed by the student's lengths.

    teacher None: the teachers tokenise like the student (one encoding); student_only: the teachers never run on
    these examples (cached logits), so their side is not encoded at all and batches carry "T": None.
    """

    def __init__(self, student, teacher=None, student_only=False):
        self.S, self.T = student, None if student_only else teacher if teacher is not None else student
        self.labels = student.labels

    def __len__(self):
        return len(self.S)

    @property
    def lengths(self):
        """The student's lengths: the plan must not change when a cached teacher side is left out."""
        return self.S.lengths

    def batch(self, index):
        """Numpy arrays {"S": {...}, "T": {...}, "labels"}; one dict for both sides when they share features."""
        s = collate(self.S, index)
        labels = s.pop("labels")
        if self.T is None:
            return {"S": s, "T": None, "labels": labels}
        t = s if self.T is self.S else {k: v for k, v in collate(self.T, index).items() if k != "labels"}
        return {"S": s, "T": t, "labels": labels}


def encode_sides(student, teacher, examples, max_seq_length, regression, desc, teacher_runs=True):
    """Sides of `examples` for a student and a teacher adapter: one encoding when they tokenise alike, none for
    the teacher when it never runs on these examples (cached logits, dev sets)."""
    s = student.encoder.encode(examples, max_seq_length, regression, desc=desc)
    if student.encoder.signature() == teacher.encoder.signature():
        return Sides(s)
    if not teacher_runs:
        return Sides(s, student_only=True)
    return Sides(s, teacher.encoder.encode(examples, max_seq_length, regression, desc=desc))


def to_tensors(batch):
    """Numpy batch (nested one level for sides) -> paddle tensors; a shared side stays one dict."""
    import paddle
    done = {}

    def convert(value):
        if value is None:
            return None
        if isinstance(value, dict):
            if id(value) not in done:
                done[id(value)] = {k: paddle.to_tensor(v) for k, v in value.items()}
            return done[id(value)]
        return paddle.to_tensor(value)
    return {k: convert(v) for k, v in batch.items()}
