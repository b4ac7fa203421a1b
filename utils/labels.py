"""Teacher labelling: the teachers' logits of every distillation row, computed once on an inference engine and
kept in a label store that any later run (another student, another seed, a resumed run) reads instead of
running the teachers again.

A store is a folder per teacher setting (the teachers' files, their weights, their tokenizer, the truncation
length, and an inexact engine with its quantization method): DIR/<setting hash>/shard-<hash of its rows>.logits.
Rows are keyed one by one (a hash of their texts), so a run over other rows finds the ones already labelled
wherever they are. Rows still missing are sorted by (length, key), cut into shards of `shard_rows` and each
shard is labelled and renamed into place whole: a killed run loses at most the shard in progress, and a rerun
recomputes exactly the same shards. `part` K/N labels every N-th shard only, so N processes (or machines, with
the shard files copied into one folder afterwards) label one row set together; any of them, or the training
run, then finds every row. An inexact engine's check on the dev rows is kept beside the shards
(label_engine.json).

A shard file is plain bytes, never a pickle: a magic line, a JSON header line, then the row keys (uint64),
the row offsets into the logits (int64, rows + 1: token tasks keep one logits row per token) and the logits
(float32 [positions, labels]).
"""
import functools
import hashlib
import json
import os

import numpy as np

from utils.batches import subset
from utils.errors import UserError, first_line
from utils.files import atomic_file
from utils.inference import ENGINES as EXPORT_ENGINES
from utils.inference import Streams, export_static, make_engines, process_threads

MAGIC = b"paddle-distill logits v1\n"
SHARD_ROWS = 4096
# what may label: dygraph and every exported engine; an inexact one (INT8) changes the labels, so its rows go to a
# store of their own and its agreement with FP32 on the dev rows is measured and printed first
ENGINES = ("auto", "dygraph", *EXPORT_ENGINES)
AGREEMENT_FILE = "label_engine.json"
# How an inexact engine's graph is built for labelling (its labels change with it): 2 = the label layer, with
# onnxruntime's attention cores fused (make_engines(..., tuned=True)). Raise it when that changes.
LABEL_GRAPH = 2
# A concurrent engine (Engine.concurrent: onnxruntime) labels with several predictors at once, one per thread, at
# most MAX_STREAMS (each holds a copy of the teacher), each called on STREAM_BATCH rows: faster than one predictor
# on every thread (docs/BENCHMARKS.md). INT8 quantizes each batch's activations by their own range, so the batch
# is part of an INT8 store's key.
STREAM_BATCH = 32
MAX_STREAMS = 4
AUTO_ENGINE = "paddle_inference"  # what "auto" labels on: the fastest FP32 engine measured here for labelling


def row_keys(examples, groups=None):
    """uint64 key of each row: its example's texts (text_a, text_b; a sentence's words), what the teacher reads,
    not its label. groups: the example of each feature row when an example spans several (a token task's
    windows); a later window's key adds its place among them."""
    from utils.tasks import type_of
    text = type_of(examples).text
    texts = [text(e) for e in examples]
    if groups is not None:
        seen, windows = {}, []
        for g in groups:
            seen[g] = seen.get(g, -1) + 1
            windows.append(texts[g] + (f"\x1e{seen[g]}" if seen[g] else ""))
        texts = windows
    out = np.empty(len(texts), dtype=np.uint64)
    for i, text in enumerate(texts):
        out[i] = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
    return out


def batch_logits(logits, index):
    """The stored logits of one batch's rows: [B, labels], or per-token [B, L, labels] padded with zeros to the
    batch's longest row (the positions a loss reads are the same in both sides' batches)."""
    if logits.dtype != object:
        return logits[index]
    rows = [logits[i] for i in index]
    out = np.zeros((len(rows), max(len(r) for r in rows), rows[0].shape[1]), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def store_folder(cache_dir, paths, weights, signature, max_seq_length, engine="auto"):
    """The folder of one teacher setting: a changed teacher file, weight, tokenizer or truncation is another, and
    so is an inexact engine (its labels are not FP32's)."""
    from utils.loop import digest_files
    h = hashlib.sha256()
    for path, weight in zip(paths, weights):
        digest_files([path], h)
        if not os.path.exists(path):  # a model name (PaddleNLP's download): no files to hash, so its name
            h.update(path.encode("utf-8"))
        h.update(repr(float(weight)).encode())
    h.update(repr((signature, max_seq_length)).encode())
    if not exact(engine):  # and how its file is made: another quantization recipe labels into another folder
        h.update(repr(("engine", engine, EXPORT_ENGINES[engine].method, LABEL_GRAPH, STREAM_BATCH)).encode())
    return os.path.join(cache_dir, f"teacher-{h.hexdigest()[:24]}")


def write_shard(path, keys, offsets, logits):
    header = json.dumps({"rows": len(keys), "positions": int(offsets[-1]), "labels": int(logits.shape[1])})
    with atomic_file(path, "wb") as f:
        f.write(MAGIC + header.encode() + b"\n")
        for array, dtype in ((keys, "<u8"), (offsets, "<i8"), (logits, "<f4")):
            f.write(np.ascontiguousarray(array, dtype=dtype).tobytes())


def read_shard(path, with_logits=True):
    """(keys, offsets, logits or None) of one shard; a damaged file is named."""
    try:
        with open(path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise ValueError("not a logits shard")
            header = json.loads(f.readline())
            rows, positions, labels = header["rows"], header["positions"], header["labels"]
            keys = np.frombuffer(f.read(8 * rows), dtype="<u8")
            offsets = np.frombuffer(f.read(8 * (rows + 1)), dtype="<i8")
            logits = np.frombuffer(f.read(4 * positions * labels), dtype="<f4") if with_logits else None
        if len(keys) != rows or len(offsets) != rows + 1 or (logits is not None and len(logits) != positions * labels):
            raise ValueError("truncated")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"damaged teacher-logit shard ({err}); delete it and its rows are labelled again", path)
    return keys, offsets, None if logits is None else logits.reshape(positions, labels)


class LabelStore:
    """The shards of one teacher setting, indexed by row key."""

    def __init__(self, folder):
        self.folder = folder
        self.shards, self.keys, self.where = [], np.zeros(0, np.uint64), np.zeros((0, 2), np.int64)
        self.refresh()

    def refresh(self):
        names = sorted(n for n in os.listdir(self.folder) if n.endswith(".logits")) if os.path.isdir(
            self.folder) else []
        keys, where = [], []
        for s, name in enumerate(names):
            k, _, _ = read_shard(os.path.join(self.folder, name), with_logits=False)
            keys.append(k)
            where.append(np.stack([np.full(len(k), s), np.arange(len(k))], axis=1))
        self.shards = names
        if keys:
            keys, where = np.concatenate(keys), np.concatenate(where)
            order = np.argsort(keys, kind="stable")  # a key in two shards: the first shard's copy
            self.keys, self.where = keys[order], where[order]

    def find(self, keys):
        """Position of each key in the sorted index, or -1 where it is not stored."""
        if not len(self.keys):
            return np.full(len(keys), -1)
        pos = np.searchsorted(self.keys, keys)
        found = (pos < len(self.keys)) & (self.keys[np.minimum(pos, len(self.keys) - 1)] == keys)
        return np.where(found, pos, -1)

    def gather(self, keys):
        """Logits of each key: [N, labels] when every row has one logits row, else an object array of
        [positions, labels] arrays (token tasks)."""
        pos = self.find(keys)
        if (pos < 0).any():
            raise UserError(f"{int((pos < 0).sum())} rows are not labelled yet", self.folder)
        shard_of, row_of = self.where[pos, 0], self.where[pos, 1]
        out = None
        for s in np.unique(shard_of):
            _, offsets, logits = read_shard(os.path.join(self.folder, self.shards[s]))
            sel = np.nonzero(shard_of == s)[0]
            if out is None:
                flat = offsets[-1] == len(offsets) - 1 and (np.diff(offsets) == 1).all()
                out = np.zeros((len(keys), logits.shape[1]), np.float32) if flat else np.empty(len(keys), object)
            if out.dtype == object:
                for i in sel:
                    r = row_of[i]
                    out[i] = np.array(logits[offsets[r]:offsets[r + 1]])
            else:
                out[sel] = logits[offsets[row_of[sel]]]
        return out


def plan_shards(keys, lengths, shard_rows):
    """The distinct rows (first occurrence of each key) sorted by (length, key), cut into shards: index arrays
    into `keys`. A function of the row set only, so every process and every rerun cuts the same shards."""
    _, first = np.unique(keys, return_index=True)
    order = first[np.lexsort((keys[first], lengths[first]))]
    return [order[i:i + shard_rows] for i in range(0, len(order), shard_rows)]


def shard_name(keys):
    return "shard-" + hashlib.sha256(np.ascontiguousarray(keys, "<u8").tobytes()).hexdigest()[:24] + ".logits"


def label_rows(store, label_fn, features, keys, part=(0, 1), shard_rows=None, desc="teacher labels"):
    """Label the rows the store lacks: label_fn(features subset) -> logits ([n, labels], or an object array of
    per-token arrays). Each shard is written whole; `part` (k, n) takes every n-th shard from the k-th. Returns
    (shards written, rows labelled)."""
    from tqdm import tqdm

    if len(features) != len(keys):
        raise UserError(f"{len(features)} teacher-side rows for {len(keys)} keys: the teacher cuts the examples into "
                        "other rows than the student (another tokenizer?)")
    # the plan covers every row, so all parts agree on it; a shard labels only the rows the store lacks (a rerun
    # over more rows labels the new ones, not their shards' old ones)
    todo = [s[store.find(keys[s]) < 0] for j, s in enumerate(plan_shards(keys, features.lengths, shard_rows or
                                                                          SHARD_ROWS)) if j % part[1] == part[0]]
    todo = [s for s in todo if len(s)]
    written = rows = 0
    for s in tqdm(todo, desc=desc, unit="shard", disable=not todo):
        logits = label_fn(subset(features, s))
        if logits.dtype == object:
            offsets = np.concatenate([[0], np.cumsum([len(x) for x in logits])])
            flat = np.concatenate(list(logits)) if len(logits) else np.zeros((0, 1), np.float32)
        else:
            offsets, flat = np.arange(len(logits) + 1), logits
        write_shard(os.path.join(store.folder, shard_name(keys[s])), keys[s], offsets, flat)
        written, rows = written + 1, rows + len(s)
    store.refresh()
    return written, rows


# ---- engines: the teachers' weighted-mean logits of a feature set

def teacher_label_fn(teachers, weights, engine="auto", batch_size=128):
    """features -> the teachers' weighted-mean logits, each teacher on `engine`: paddle_inference (its exported
    program, the fastest FP32 engine measured here for labelling), onnxruntime, dygraph, or auto (paddle_inference
    for a teacher of real size that exports, dygraph otherwise)."""
    return teacher_label_fns(teachers, weights, [engine], batch_size)[0]


def teacher_label_fns(teachers, weights, engines, batch_size=128):
    """One label function (as teacher_label_fn) per engine named, all run from one export of each teacher: an
    inexact engine and the FP32 engine its check compares it with cost one export, not two."""
    per_teacher = [_label_fns(teacher, engines, batch_size) for teacher in teachers]
    return [functools.partial(_weighted_mean, list(column), weights) for column in zip(*per_teacher)]


def _weighted_mean(runners, weights, features):
    out = [w * r(features) for w, r in zip(weights, runners)]
    total = out[0] if len(out) == 1 else sum(out[1:], out[0])
    return total / sum(weights) if out[0].dtype == object else (total / sum(weights)).astype(np.float32)


def engine_label_fn(folder, name, batch_size, threads):
    """features -> logits on an exported engine as labelling runs it. A concurrent engine runs min(threads,
    MAX_STREAMS) predictors at once (the threads shared among them), STREAM_BATCH rows a call; any other one
    predictor on every thread, batch_size rows a call."""
    from utils.training import batched_logits
    engine = EXPORT_ENGINES[name]
    if not engine.concurrent:
        return functools.partial(batched_logits, engine.load(folder, threads=max(1, threads)), batch_size=batch_size)
    streams = max(1, min(threads, MAX_STREAMS))
    predictors = Streams([engine.load(folder, threads=max(1, threads // streams)) for _ in range(streams)])
    return functools.partial(batched_logits, predictors, batch_size=STREAM_BATCH, streams=streams)


def _label_fns(teacher, engines, batch_size):
    """features -> one teacher's logits, per engine named, over one export of it (in a temporary folder); dygraph's
    for "dygraph", and for "auto" with a tiny teacher (the tests'), where exporting would take longer than it
    saves."""
    from utils.distill import stays_dygraph
    from utils.training import predict
    dygraph = [functools.partial(predict, teacher, batch_size=batch_size)]
    if len(engines) == 1 and stays_dygraph(teacher, engines[0]):
        return dygraph
    import shutil
    import tempfile

    names = [AUTO_ENGINE if engine == "auto" else engine for engine in engines]
    folder = tempfile.mkdtemp(prefix="teacher-export-")
    try:
        export_static(teacher, folder, teacher.label_layer())
        make_engines(folder, names, tuned=True)
        return [engine_label_fn(folder, name, batch_size, process_threads()) for name in names]
    except Exception as err:  # a model that does not trace: dygraph computes the same logits, slower
        if engines != ["auto"]:
            raise UserError(f"--label_engine {engines[0]}: the teacher does not export ({first_line(err)})")
        print(f"note: the teacher labels in dygraph ({type(err).__name__}: {first_line(err)})")
        return dygraph
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def exact(engine):
    return engine in ("auto", "dygraph") or EXPORT_ENGINES[engine].exact


def agreement(logits, reference):
    """{rows, agreement, max_abs_diff, mean_abs_diff} of two engines' logits; agreement is the share of equal
    predictions (argmax; per position for token tasks), None for a regression's single output."""
    flat = [np.concatenate(list(x)) if x.dtype == object else x for x in (logits, reference)]
    diff = np.abs(flat[0] - flat[1])
    agree = float(np.mean(flat[0].argmax(-1) == flat[1].argmax(-1))) if flat[0].shape[-1] > 1 else None
    return {"rows": len(logits), "agreement": agree, "max_abs_diff": float(diff.max()),
            "mean_abs_diff": float(diff.mean())}


def describe_check(engine, measured):
    """The line an inexact engine's check prints (and a later run reusing its labels prints again)."""
    what = (f"agrees with the FP32 teacher on {measured['agreement']:.2%} of the predictions over"
            if measured["agreement"] is not None else "differs from the FP32 teacher on")
    return (f"label engine {engine}: {what} {measured['rows']:,} dev rows (logits differ by "
            f"{measured['mean_abs_diff']:.3g} on average, {measured['max_abs_diff']:.3g} at most)")


def check_engine(folder, label_fn, fp32_fn, engine, dev_features):
    """An inexact engine's agreement with the FP32 teachers (fp32_fn: the engine it quantizes) on the dev rows:
    printed and kept in the store (label_engine.json: copy it with the shards)."""
    if dev_features is None or not len(dev_features):
        raise UserError(f"--label_engine {engine} changes the teacher's labels: it labels only when its agreement "
                        "with FP32 can be measured on dev rows, and this run has none")
    measured = agreement(label_fn(dev_features), fp32_fn(dev_features))
    print(describe_check(engine, measured))
    with atomic_file(os.path.join(folder, AGREEMENT_FILE)) as f:
        json.dump(dict(measured, engine=engine, method=EXPORT_ENGINES[engine].method), f, indent=2)
    return measured


def teacher_logits(cache_dir, teacher_paths, teachers, weights, max_seq_length, keys, features_fn,
                   engine="auto", batch_size=128, part=(0, 1), dev_features_fn=None):
    """The teachers' logits of every row (row_keys, in order), labelling the rows the store lacks first.
    features_fn() encodes the rows for the teachers; it is called only when some row is missing, and so is
    dev_features_fn() (the dev rows an inexact engine is checked on before it labels)."""
    import time
    folder = store_folder(cache_dir, teacher_paths, weights, teachers[0].encoder.signature(), max_seq_length, engine)
    store, distinct = LabelStore(folder), np.unique(keys)
    missing = int((store.find(distinct) < 0).sum())
    if missing:
        start = time.time()
        if exact(engine):
            fn = teacher_label_fn(teachers, weights, engine, batch_size)
        else:  # checked first against the FP32 engine it quantizes, from the same export
            fp32 = EXPORT_ENGINES[engine].quantizes or AUTO_ENGINE
            fn, fp32_fn = teacher_label_fns(teachers, weights, [engine, fp32], batch_size)
            check_engine(folder, fn, fp32_fn, engine, dev_features_fn and dev_features_fn())
        shards, rows = label_rows(store, fn, features_fn(), keys, part)
        seconds = time.time() - start
        print(f"teacher logits: wrote {shards} shards ({rows:,} rows, {rows / max(seconds, 1e-9):.0f} rows/s) to "
              f"{folder}")
    else:
        print(f"teacher logits: reusing {folder} (all {len(distinct):,} distinct rows labelled)")
        if os.path.isfile(os.path.join(folder, AGREEMENT_FILE)):  # inexact labels: say how inexact again
            with open(os.path.join(folder, AGREEMENT_FILE), encoding="utf-8") as f:
                print(describe_check(engine, json.load(f)))
    if part[1] > 1:
        return None
    return store.gather(keys)
