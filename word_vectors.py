"""Word vectors for the word students (bilstm, cnn), read off a pretrained transformer: each word of the given texts,
alone, through the model, its last layer mean-pooled (the way sentence-transformers pool a sentence).

    python word_vectors.py --model_name_or_path MINILM --text_file glue/SST-2/train.tsv \\
        --text_file glue/SST-2/transfer.txt --output_file out/minilm_words.txt
    python task_distill.py ... --student_model_name_or_path cnn --glove_embs out/minilm_words.txt

Only 50-d GloVe installs here; the teacher's *pretrained* checkpoint (before fine-tuning, so a gold-only twin
may use the same vectors without learning from the fine-tuned teacher) gives 384-d vectors for exactly the words
the student's vocabulary will hold. Words come from the word students' own tokenizer, so every key matches.
Writes word2vec text (a "count width" header, then "word v1 v2 ..."), under a temporary name renamed when done.
"""
import argparse

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.errors import UserError, exits_cleanly
from utils.files import atomic_file, check_output_file, text_lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name_or_path", required=True,
                   help="a BERT-style model folder (PaddleNLP or Hugging Face) or PaddleNLP name: the teacher's "
                        "pretrained checkpoint")
    p.add_argument("--text_file", action="append", required=True,
                   help="UTF-8 text whose words get vectors (repeatable): plain lines or TSV, every field read")
    p.add_argument("--output_file", required=True, help="the word2vec text file to write")
    p.add_argument("--max_words", type=int, default=100000,
                   help="the most frequent words kept (default 100,000, the word students' vocabulary cap)")
    p.add_argument("--dim", type=int, default=0,
                   help="keep this many principal components (centred PCA over the written words; default 0: the "
                        "model's full width). A BiLSTM's step cost grows with its input width")
    p.add_argument("--batch_size", type=int, default=256, help="words per forward pass (default 256)")
    args = p.parse_args(argv)
    if args.max_words < 1 or args.batch_size < 1 or args.dim < 0:
        raise UserError("--max_words and --batch_size must be at least 1, --dim at least 0")
    check_output_file(args.output_file)
    return args


def text_fields(paths):
    """Every tab-separated field of every line of the files."""
    for path in paths:
        for _, line in text_lines(path, "UTF-8 text, one example per line"):
            yield from line.split("\t")


def frequent_words(paths, limit):
    """The `limit` most frequent words of the files, ties alphabetical: the word students' own vocabulary (their
    tokenizer and order), so every key matches and the same texts in any order give the same file."""
    from utils.adapters.words import WordEncoder
    words = WordEncoder.build(text_fields(paths), pair=False, max_vocab_size=limit + 2).tokens[2:]  # no [PAD], [UNK]
    if not words:
        raise UserError("no words in the text files; expected UTF-8 text", ", ".join(paths))
    return words


def pooled_vectors(model, piece_ids, cls_id, sep_id, pad_id, words, batch_size):
    """[len(words), hidden] float32: each word as "[CLS] pieces [SEP]", the last layer averaged over its tokens."""
    import numpy as np
    import paddle
    from tqdm import tqdm

    from utils.batches import pad
    out = []
    model.eval()
    with paddle.no_grad():
        for start in tqdm(range(0, len(words), batch_size), desc="word vectors", unit="batch", mininterval=2):
            rows = [[cls_id] + piece_ids(w)[:30] + [sep_id] for w in words[start:start + batch_size]]
            ids = pad(rows, pad_id)
            mask = (ids != pad_id).astype(np.float32)
            hidden = model(paddle.to_tensor(ids))[0].numpy()
            out.append((hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True))
    return np.concatenate(out).astype(np.float32)


def principal_components(vectors, dim):
    """vectors centred and projected onto their top `dim` principal directions (only centred when dim is not
    below the width)."""
    import numpy as np
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    if dim >= vectors.shape[1]:
        return centred
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    return (centred @ directions[:dim].T).astype(np.float32)


def write_word2vec(path, words, vectors):
    with atomic_file(path) as f:
        f.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, row in zip(words, vectors):
            f.write(word + " " + " ".join(f"{x:.5f}" for x in row) + "\n")


@exits_cleanly
def main(argv=None):
    args = parse_args(argv)
    from paddlenlp.transformers import AutoModel

    from utils.models import load_model, load_tokenizer, quiet_paddlenlp
    from utils.wordpiece import piece_ids
    quiet_paddlenlp()
    words = frequent_words(args.text_file, args.max_words)
    tokenizer = load_tokenizer(args.model_name_or_path)
    model = load_model(AutoModel, args.model_name_or_path)
    vectors = pooled_vectors(model, piece_ids(tokenizer), tokenizer.cls_token_id, tokenizer.sep_token_id,
                             tokenizer.pad_token_id, words, args.batch_size)
    if args.dim:
        vectors = principal_components(vectors, args.dim)
    write_word2vec(args.output_file, words, vectors)
    print(f"wrote {len(words):,} word vectors of width {vectors.shape[1]} to {args.output_file}")
    return {"words": len(words), "width": int(vectors.shape[1])}


if __name__ == "__main__":
    main()
