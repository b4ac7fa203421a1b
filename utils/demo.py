"""The demo's data. Real: a sample of SST-2 drawn from a local GLUE folder (or PaddleNLP's download when online)
into the output folder at run time; GLUE's files carry their own licences and never enter the repository.
Synthetic (the quick plumbing check and the tests): a sentiment task in SST-2 format and tiny random BERTs.

    python -m utils.demo --sample_sst2 ../shared/data/glue --out demo   # demo/glue/SST-2: 2,000 train, all dev
    python -m utils.demo --out demo/quick      # writes demo/quick/glue/SST-2/{train,dev}.tsv and models/*

Sentences follow a small grammar ("the plot was not very dull but the cast was weak ."); the label is the
polarity of the last clause's adjective, flipped by "not". Models are random BERTs over the grammar's
vocabulary, so they learn it from scratch.
"""
import argparse
import os
import random

from utils.errors import exits_cleanly
from utils.files import atomic_file
from utils.tasks.sequence import get_task, load_split, task_dir

SUBJECTS = ["the movie", "this film", "the plot", "the acting", "the script", "the ending", "the cast",
            "the soundtrack", "this story", "the director 's work", "every scene", "the dialogue"]
VERBS = ["was", "is", "felt", "seemed", "remains", "looked"]
ADVERBS = ["", "", "really", "very", "quite", "so", "truly", "rather"]
POSITIVE = ["good", "great", "wonderful", "moving", "brilliant", "funny", "charming", "clever", "gripping", "fresh"]
NEGATIVE = ["bad", "dull", "boring", "awful", "clumsy", "tedious", "bland", "messy", "stale", "weak"]
FILLERS = ["", "", "", "from start to finish", "for most of its length", "in the end", "by any measure",
           "as far as i can tell", "despite the hype", "and everyone noticed"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def vocabulary():
    words = set()
    for phrase in SUBJECTS + VERBS + ADVERBS + POSITIVE + NEGATIVE + FILLERS + ["not", ".", "and", "but"]:
        words.update(phrase.split())
    return SPECIAL + sorted(words)


def _clause(rng):
    positive = rng.random() < 0.5
    negated = rng.random() < 0.3
    words = [rng.choice(SUBJECTS), rng.choice(VERBS)] + (["not"] if negated else [])
    words += [rng.choice(ADVERBS), rng.choice(POSITIVE if positive else NEGATIVE)]
    return words, int(positive != negated)


def sentence(rng):
    """One sentence and its label (1 positive, 0 negative): a clause, or two joined by "but" (the second wins)."""
    words, label = _clause(rng)
    if rng.random() < 0.3:
        second, label = _clause(rng)
        words += ["but"] + second
    words.append(rng.choice(FILLERS))
    if rng.random() < 0.2:  # a neutral tail makes lengths vary (and bucketing matter)
        words += ["and", rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(FILLERS)]
    return " ".join(w for w in words if w) + " .", label


def write_sst2(folder, n_train=2000, n_dev=400, seed=0):
    """SST-2 layout and quirks: header `sentence\\tlabel`, a space before the tab."""
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [sentence(rng) for _ in range(n)]
        with open(os.path.join(folder, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            f.writelines(f"{text} \t{label}\n" for text, label in rows)


def tag_words(words):
    """Synthetic NER tags for a demo sentence: subject phrases are SUBJ entities (B- then I-), adjectives are
    POS or NEG entities by polarity, everything else O."""
    tags, i = ["O"] * len(words), 0
    subjects = sorted((p.split() for p in SUBJECTS), key=len, reverse=True)
    while i < len(words):
        match = next((p for p in subjects if words[i:i + len(p)] == p), None)
        if match:
            tags[i:i + len(match)] = ["B-SUBJ"] + ["I-SUBJ"] * (len(match) - 1)
            i += len(match)
            continue
        if words[i] in POSITIVE or words[i] in NEGATIVE:
            tags[i] = "B-POS" if words[i] in POSITIVE else "B-NEG"
        i += 1
    return tags


def write_conll(folder, n_train=240, n_dev=60, seed=0):
    """The demo sentences as a CoNLL-style NER set (train.txt, dev.txt): word, a POS-like column, tag."""
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        with open(os.path.join(folder, f"{split}.txt"), "w", encoding="utf-8") as f:
            f.write("-DOCSTART- -X- O\n\n")
            for _ in range(n):
                words = sentence(rng)[0].split()
                f.writelines(f"{w} X {t}\n" for w, t in zip(words, tag_words(words)))
                f.write("\n")


def write_squad(folder, n_train=240, n_dev=60, seed=0):
    """A synthetic SQuAD v1.1 set: a context of three clauses with different subjects ("the plot felt dull ."),
    a question naming one subject, the answer its adjective."""
    import json
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        articles = []
        for i in range(n):
            subjects = rng.sample(SUBJECTS, 3)
            clauses = [[s, rng.choice(VERBS), rng.choice(ADVERBS), rng.choice(POSITIVE + NEGATIVE)] for s in subjects]
            context = " ".join(" ".join(w for w in c if w) + " ." for c in clauses)
            asked = rng.randrange(3)
            clause_text = " ".join(w for w in clauses[asked] if w)
            start = context.index(clause_text) + len(clause_text) - len(clauses[asked][-1])
            qa = {"id": f"{split}-{i}", "question": subjects[asked],
                  "answers": [{"text": clauses[asked][-1], "answer_start": start}]}
            articles.append({"title": f"{split}-{i}", "paragraphs": [{"context": context, "qas": [qa]}]})
        with open(os.path.join(folder, f"{split}.json"), "w", encoding="utf-8") as f:
            json.dump({"version": "1.1", "data": articles}, f)


def sample_sst2(glue_dir, folder, n_train=2000, seed=0, n_transfer=0, n_valid=0, valid_min_words=0):
    """n_train SST-2 training sentences drawn at random (seeded) and the whole dev set, written to folder/ in
    SST-2's layout; with n_transfer, the next n_transfer training sentences, without their labels, in
    folder/transfer.txt (one sentence per line): the low-label setting, where most text has no label.
    n_valid: dev.tsv holds n_valid other *training* sentences instead of the dev set, a validation slice to choose
    recipes on, so the dev set is reported once and never tuned to; valid_min_words: only sentences of at least that
    many words (SST-2's training rows are mostly phrase fragments, 9.4 words on average; its dev rows are whole
    sentences, 19.5). SST-2's training rows are also fragments of one another (the phrases of 8,544 sentences), so
    a transfer row of 4 words or more found inside a validation sentence, or holding one, is left out of the
    transfer set: the teacher's label for a piece of a validation sentence would leak it to the student.
    Returns the number of transfer rows left out. glue_dir None: PaddleNLP's download route (online, or its cache)."""
    spec = get_task("SST-2")
    source = task_dir(spec, glue_dir)
    train = load_split(spec, source, "train")
    random.Random(seed).shuffle(train)
    rest = train[n_train:]
    dev, left_out = load_split(spec, source, "dev"), 0
    if n_valid:
        dev = [e for e in rest if len(e.text_a.split()) >= valid_min_words][:n_valid]
        chosen = {id(e) for e in dev}
        rest = [e for e in rest if id(e) not in chosen]
        kept = drop_fragments(rest, [e.text_a for e in dev])
        left_out, rest = len(rest) - len(kept), kept
    for split, rows in (("train", train[:n_train]), ("dev", dev)):
        with atomic_file(os.path.join(folder, f"{split}.tsv")) as f:
            f.write("sentence\tlabel\n")
            f.writelines(f"{e.text_a}\t{spec.labels[e.label] if spec.labels else e.label}\n" for e in rows)
    if n_transfer:
        with atomic_file(os.path.join(folder, TRANSFER_FILE)) as f:
            f.writelines(e.text_a + "\n" for e in rest[:n_transfer])
    return left_out


def drop_fragments(examples, texts, min_words=4):
    """The examples whose text neither lies inside one of texts nor holds one, counting pieces of min_words words
    or more (shorter ones, such as "the film", are common to unrelated sentences); matched on word boundaries."""
    inside = "\n".join(f" {t} " for t in texts)
    holding = "\n".join(f" {e.text_a} " for e in examples)
    found = {t for t in texts if len(t.split()) >= min_words and f" {t} " in holding}
    return [e for e in examples
            if not (len(e.text_a.split()) >= min_words and f" {e.text_a} " in inside)
            and not any(f" {t} " in f" {e.text_a} " for t in found)]


TRANSFER_FILE = "transfer.txt"


def sample_conll(ner_dir, folder, n_train=1000, seed=0):
    """Low-label NER: n_train sentences of ner_dir/train.txt drawn at random (seeded) written as folder/train.txt,
    dev.txt copied whole, and every other training sentence's words, one sentence a line without tags, in
    folder/transfer.txt. Sentences are copied as written (blank-line separated blocks)."""
    import shutil
    with open(os.path.join(ner_dir, "train.txt"), encoding="utf-8") as f:
        blocks = [b.strip("\n") for b in f.read().split("\n\n") if b.strip() and not b.startswith("-DOCSTART-")]
    random.Random(seed).shuffle(blocks)
    os.makedirs(folder, exist_ok=True)
    with atomic_file(os.path.join(folder, "train.txt")) as f:
        f.write("\n\n".join(blocks[:n_train]) + "\n")
    with atomic_file(os.path.join(folder, TRANSFER_FILE)) as f:
        f.writelines(" ".join(line.split()[0] for line in b.split("\n")) + "\n" for b in blocks[n_train:])
    shutil.copyfile(os.path.join(ner_dir, "dev.txt"), os.path.join(folder, "dev.txt"))
    return len(blocks)


def write_vocab(path, words):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(words) + "\n")


def write_vectors(path, words, dim=16, seed=0):
    """Random word vectors in GloVe's text format (no header) so augmentation runs without a download."""
    import numpy as np
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for word in words:
            f.write(word + " " + " ".join(f"{x:.5f}" for x in rng.standard_normal(dim)) + "\n")
    return path


def make_tiny_bert(folder, words=None, layers=2, hidden=32, heads=2, intermediate=None, seed=0, model_class=None,
                   **config):
    """A random BERT (BertModel unless model_class says otherwise, e.g. BertForMaskedLM) saved as a PaddleNLP
    folder (config, weights, vocab) for tests and the demo."""
    import paddle
    from paddlenlp.transformers import BertConfig, BertModel, BertTokenizer
    words = words or vocabulary()
    os.makedirs(folder, exist_ok=True)
    vocab_file = os.path.join(folder, "vocab.txt")
    write_vocab(vocab_file, words)
    paddle.seed(seed)
    cfg = BertConfig(vocab_size=len(words), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=intermediate or 4 * hidden, max_position_embeddings=128,
                     type_vocab_size=config.pop("type_vocab_size", 2), **config)
    (model_class or BertModel)(cfg).save_pretrained(folder)
    BertTokenizer(vocab_file, do_lower_case=True).save_pretrained(folder)
    return folder


@exits_cleanly
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo", help="folder for glue/ (and models/ when synthetic; default demo)")
    p.add_argument("--sample_sst2", metavar="GLUE_DIR",
                   help="real data: sample SST-2 from GLUE_DIR/SST-2 ('download': PaddleNLP's download route)")
    p.add_argument("--sample_conll", metavar="NER_DIR",
                   help="real data: sample --n_train sentences of NER_DIR/train.txt into OUT/ner, the other "
                        f"training sentences untagged in OUT/ner/{TRANSFER_FILE}")
    p.add_argument("--n_train", type=int, default=2000, help="training sentences (default 2000)")
    p.add_argument("--n_transfer", type=int, default=0,
                   help=f"real data: also write this many more training sentences, unlabeled, to {TRANSFER_FILE}")
    p.add_argument("--n_valid", type=int, default=0,
                   help="real data: dev.tsv holds this many more training sentences (a validation slice for "
                        "choosing recipes) instead of the dev set")
    p.add_argument("--valid_min_words", type=int, default=0,
                   help="real data, with --n_valid: validation sentences only from training rows of at least this "
                        "many words (SST-2's training rows are mostly phrase fragments; its dev rows whole sentences)")
    p.add_argument("--n_dev", type=int, default=400, help="synthetic dev sentences (default 400; real: all 872)")
    args = p.parse_args(argv)
    if args.sample_sst2:
        folder = os.path.join(args.out, "glue", "SST-2")
        left_out = sample_sst2(None if args.sample_sst2 == "download" else args.sample_sst2, folder, args.n_train,
                               n_transfer=args.n_transfer, n_valid=args.n_valid,
                               valid_min_words=args.valid_min_words)
        more = f", {args.n_transfer} unlabeled in {TRANSFER_FILE}" if args.n_transfer else ""
        dev = (f"{args.n_valid} more training sentences as dev.tsv ({left_out} fragments of them left out of the "
               "transfer rows)") if args.n_valid else "the whole dev set"
        print(f"SST-2 sample in {folder}: {args.n_train} training sentences{more}, {dev}")
        return
    if args.sample_conll:
        total = sample_conll(args.sample_conll, os.path.join(args.out, "ner"), args.n_train)
        print(f"NER sample in {args.out}/ner: {args.n_train} tagged training sentences, "
              f"{total - args.n_train} untagged in {TRANSFER_FILE}, the whole dev set")
        return
    write_sst2(os.path.join(args.out, "glue", "SST-2"), args.n_train, args.n_dev)
    make_tiny_bert(os.path.join(args.out, "models", "teacher-init"), layers=4, hidden=64, heads=4)
    write_vectors(os.path.join(args.out, "models", "vectors.txt"), [w for w in vocabulary() if w.isalpha()])
    print(f"demo data in {args.out}/glue/SST-2, tiny teacher and word vectors in {args.out}/models")


if __name__ == "__main__":
    from utils.process import configure
    configure()
    main()
