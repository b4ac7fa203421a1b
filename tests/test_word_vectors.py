"""word_vectors.py: word vectors read off a pretrained BERT for the word students."""
import os

import numpy as np
import pytest

import word_vectors
from tests.conftest import leftovers, write


def _vectors(path):
    with open(path, encoding="utf-8") as f:
        count, width = map(int, f.readline().split())
        rows = [line.split() for line in f]
    assert len(rows) == count
    return [r[0] for r in rows], np.array([[float(x) for x in r[1:]] for r in rows], dtype=np.float32), width


def test_each_vector_is_the_words_mean_pooled_last_layer(tmp_path, tiny_bert):
    import paddle
    from paddlenlp.transformers import AutoModel, AutoTokenizer
    text = write(str(tmp_path / "a.txt"), "Dull acting , dull ending\nbrilliant\tcast\n")
    pairs = write(str(tmp_path / "b.tsv"), "brilliant\tdull\n")
    out = str(tmp_path / "v" / "words.txt")
    result = word_vectors.main(["--model_name_or_path", tiny_bert, "--text_file", text, "--text_file", pairs,
                                "--output_file", out, "--batch_size", "2"])
    words, vectors, width = _vectors(out)
    # counts: dull 3, brilliant 2, then the words seen once in alphabetical order (both files, every TSV field)
    assert words == ["dull", "brilliant", ",", "acting", "cast", "ending"]
    assert result == {"words": 6, "width": 32} and width == 32
    model, tokenizer = AutoModel.from_pretrained(tiny_bert), AutoTokenizer.from_pretrained(tiny_bert)
    model.eval()
    for word, got in zip(words, vectors):
        ids = tokenizer(word)["input_ids"]  # [CLS] pieces [SEP]
        want = model(paddle.to_tensor([ids]))[0].numpy()[0].mean(axis=0)
        np.testing.assert_allclose(got, want, atol=2e-5)  # padding in a batch changes nothing
    assert leftovers(str(tmp_path / "v")) == []


def test_max_words_keeps_the_most_frequent_and_the_file_builds_a_student(tmp_path, tiny_bert):
    from utils.adapters.bilstm import BiLSTMAdapter
    from utils.adapters.words import WordEncoder
    text = write(str(tmp_path / "a.txt"), "dull dull bland\nbland dull charming\n")
    out = str(tmp_path / "words.txt")
    word_vectors.main(["--model_name_or_path", tiny_bert, "--text_file", text, "--output_file", out,
                       "--max_words", "2"])
    words, vectors, _ = _vectors(out)
    assert words == ["dull", "bland"]
    encoder = WordEncoder.build(["dull bland charming"], pair=False)
    adapter = BiLSTMAdapter.build(encoder, 2, {"hidden_size": 8}, vectors=out)
    assert adapter.options["emb_dim"] == 32 and adapter.vector_coverage == pytest.approx(2 / 3)
    table = adapter.model.text.embedding.weight.numpy()
    np.testing.assert_allclose(table[encoder.vocab["bland"]], vectors[1], atol=1e-5)


@pytest.mark.parametrize("content, expected", [
    (None, "missing.txt: no such file; expected UTF-8 text"),
    (b"\xff\xfe\x00binary", "bad.txt:1: not UTF-8 text"),
    (b"  \t\n\n", "bad.txt: no words in the text files"),
])
def test_bad_text_is_one_error_and_no_output(tmp_path, tiny_bert, capsys, content, expected):
    path = str(tmp_path / ("missing.txt" if content is None else "bad.txt"))
    if content is not None:
        with open(path, "wb") as f:
            f.write(content)
    out = str(tmp_path / "out" / "words.txt")
    with pytest.raises(SystemExit) as exit_info:
        word_vectors.main(["--model_name_or_path", tiny_bert, "--text_file", path, "--output_file", out])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not os.path.exists(out)


def test_dim_keeps_the_top_principal_components(tmp_path, tiny_bert):
    text = write(str(tmp_path / "a.txt"), "dull acting , dull ending\nbrilliant cast and clever dialogue\n")
    full, small = str(tmp_path / "full.txt"), str(tmp_path / "small.txt")
    common = ["--model_name_or_path", tiny_bert, "--text_file", text]
    word_vectors.main(common + ["--output_file", full])
    word_vectors.main(common + ["--output_file", small, "--dim", "3"])
    words, vectors, _ = _vectors(full)
    small_words, projected, width = _vectors(small)
    assert small_words == words and width == 3
    centred = vectors - vectors.mean(axis=0)
    directions = np.linalg.svd(centred, full_matrices=False)[2][:3]
    want = centred @ directions.T
    signs = np.sign((want * projected).sum(axis=0))  # a component's sign is arbitrary
    np.testing.assert_allclose(projected * signs, want, atol=1e-4)
    assert np.all(np.diff(projected.var(axis=0)) <= 1e-6)  # the largest variance first
