"""A small SQuAD v1.1-format set from real text, for the README's QA run (no SQuAD download here).

    python bench/make_cloze_squad.py --ner_dir ../shared/data/ner --out out/real/cloze-squad

Contexts are three consecutive sentences of the silver NER set's real news sentences (tokens joined by spaces).
For each sentence holding an entity, the question is that sentence with one entity replaced by a wh-word (PER
"who", LOC "where", ORG "which organization", MISC "what"); the answer is the entity, at its character offset
in the context. train.json comes from train.txt, dev.json from dev.txt; at most --max_train / --max_dev
questions, one per sentence, chosen with a fixed seed. The text is derived from licensed data: it is written
under --out (out/ is not in the repository), never committed.
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WH = {"PER": "who", "LOC": "where", "ORG": "which organization", "MISC": "what"}


def entities(tags):
    """[(type, first word, last word)] of BIO tags."""
    out, start = [], None
    for i, tag in enumerate(tags + ["O"]):
        if start is not None and not tag.startswith("I-"):
            out.append((tags[start][2:], start, i - 1))
            start = None
        if tag.startswith("B-"):
            start = i
    return out


def build(sentences, limit, rng, prefix):
    articles, questions = [], 0
    for p in range(0, len(sentences) - 2, 3):
        group = sentences[p:p + 3]
        context, offsets = "", []
        for s in group:
            starts = []
            for w in s.words:
                context += ("" if not context else " ")
                starts.append(len(context))
                context += w
            offsets.append(starts)
        qas = []
        for k, s in enumerate(group):
            found = [e for e in entities(s.tags) if e[0] in WH]
            if not found:
                continue
            kind, first, last = rng.choice(found)
            question = " ".join(s.words[:first] + [WH[kind]] + s.words[last + 1:]) + " ?"
            answer = " ".join(s.words[first:last + 1])
            start = offsets[k][first]
            assert context[start:start + len(answer)] == answer
            qas.append({"id": f"{prefix}-{p + k}", "question": question,
                        "answers": [{"text": answer, "answer_start": start}]})
        if qas:
            articles.append({"title": f"{prefix}-{p}", "paragraphs": [{"context": context, "qas": qas}]})
            questions += len(qas)
    rng.shuffle(articles)
    kept, count = [], 0
    for a in articles:
        if count >= limit:
            break
        kept.append(a)
        count += len(a["paragraphs"][0]["qas"])
    return {"version": "1.1", "data": kept}, count


def main(argv=None):
    from utils.tasks.tokens import read_conll
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ner_dir", default="../shared/data/ner")
    p.add_argument("--out", required=True)
    p.add_argument("--max_train", type=int, default=2000)
    p.add_argument("--max_dev", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    for split, limit in (("train", args.max_train), ("dev", args.max_dev)):
        data, n = build(read_conll(os.path.join(args.ner_dir, f"{split}.txt")), limit, rng, split)
        with open(os.path.join(args.out, f"{split}.json"), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        print(f"{split}.json: {n} questions in {len(data['data'])} contexts")


if __name__ == "__main__":
    main()
