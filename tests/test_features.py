import numpy as np
import pytest

from utils.batches import Features, Sides, collate, eval_batches, train_batches

LENGTHS = np.random.RandomState(0).randint(3, 60, size=1000)


def padding_fraction(batches, lengths):
    real = sum(lengths[b].sum() for b in batches)
    padded = sum(lengths[b].max() * len(b) for b in batches)
    return 1 - real / padded


@pytest.mark.parametrize("bucket", [True, False])
def test_every_example_once_per_epoch(bucket):
    batches = train_batches(LENGTHS, 32, seed=1, epoch=0, bucket=bucket)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(1000))
    assert len(batches) == 32  # ceil(1000 / 32)


def test_epoch_plan_is_a_function_of_seed_and_epoch():
    a = train_batches(LENGTHS, 32, seed=1, epoch=3)
    b = train_batches(LENGTHS, 32, seed=1, epoch=3)
    c = train_batches(LENGTHS, 32, seed=1, epoch=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_bucketing_cuts_padding():
    bucketed = padding_fraction(train_batches(LENGTHS, 32, 1, 0, bucket=True), LENGTHS)
    random_ = padding_fraction(train_batches(LENGTHS, 32, 1, 0, bucket=False), LENGTHS)
    assert random_ > 0.35 and bucketed < 0.05


def test_bucketed_batches_are_not_in_length_order():
    """Batch order is shuffled after sorting: training must not see short-to-long curricula."""
    maxima = [LENGTHS[b].max() for b in train_batches(LENGTHS, 8, 1, 0, bucket=True, chunk_batches=100)]
    assert maxima != sorted(maxima)


def test_shards_partition_the_epoch():
    full = train_batches(LENGTHS, 10, 5, 0)
    shards = [train_batches(LENGTHS, 10, 5, 0, num_shards=3, shard=r) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # equal step counts keep data-parallel ranks in lock-step
    joined = np.concatenate([np.concatenate(s) for s in shards])
    assert len(set(joined.tolist())) == len(joined) and len(shards[0]) == len(full) // 3


def test_eval_batches_sorted_and_complete():
    batches = eval_batches(LENGTHS, 100)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    assert all(np.diff(LENGTHS[flat]) >= 0)


def test_collate_pads_to_longest_in_batch():
    f = Features({"input_ids": [np.array([2, 5, 3]), np.array([2, 7, 8, 9, 3])],
                  "token_type_ids": [np.zeros(3, int), np.array([0, 0, 0, 1, 1])]}, np.array([1, 0]),
                 {"input_ids": 7})
    b = collate(f, np.array([1, 0]))
    assert b["input_ids"].tolist() == [[2, 7, 8, 9, 3], [2, 5, 3, 7, 7]]  # each column's own pad value
    assert b["token_type_ids"].tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]
    assert b["labels"].tolist() == [0, 1]


def test_sides_carry_each_models_ids_for_the_same_examples():
    student = Features({"ids_a": [np.array([4, 5]), np.array([6, 7, 8, 9])]}, np.array([1, 0]))
    teacher = Features({"input_ids": [np.array([2, 10, 11, 12, 3]), np.array([2, 13, 3])]}, np.array([1, 0]))
    both = Sides(student, teacher)
    assert both.lengths.tolist() == [2, 4]  # the student's: a cached (absent) teacher side changes no plan
    b = both.batch(np.array([1, 0]))
    assert b["S"]["ids_a"].tolist() == [[6, 7, 8, 9], [4, 5, 0, 0]]
    assert b["T"]["input_ids"].tolist() == [[2, 13, 3, 0, 0], [2, 10, 11, 12, 3]]
    assert b["labels"].tolist() == [0, 1] and "labels" not in b["S"] and "labels" not in b["T"]
    shared = Sides(student).batch(np.array([0]))
    assert shared["S"] is shared["T"]  # one tokenisation: collated once
