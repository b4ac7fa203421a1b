"""Token classification building blocks: CoNLL reading with the format's quirks, labels on first word pieces,
windows that cover every word, decoding back to words, entity-level scores."""
import numpy as np
import pytest
from conftest import write

from utils.batches import collate
from utils.errors import UserError
from utils.tasks.tokens import IGNORE, attach_labels, encode, entity_scores, read_conll, tag_set, word_labels

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "smith", "lives", "in", "new", "york", "play",
         "##ing", "##er", "##s", "ca", "##fe", ".", "he"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from paddlenlp.transformers import BertTokenizer
    path = write(str(tmp_path_factory.mktemp("vocab") / "vocab.txt"), "\n".join(VOCAB) + "\n")
    return BertTokenizer(path, do_lower_case=True)


def test_reader_handles_docstart_multiple_columns_crlf_bom_and_trailing_blanks(tmp_path):
    text = ("\ufeff-DOCSTART- -X- -X- O\r\n\r\nJohn NNP B-NP B-PER\r\nSmith NNP I-NP I-PER\r\n\r\n"
            "lives VBZ B-VP O\r\nin IN B-PP O\r\nNew NNP B-NP B-LOC\r\nYork NNP I-NP I-LOC\r\n\r\n\r\n")
    path = write(str(tmp_path / "train.txt"), text)
    sentences = read_conll(path)  # the tag is the last column by default
    assert [s.words for s in sentences] == [["John", "Smith"], ["lives", "in", "New", "York"]]
    assert [s.tags for s in sentences] == [["B-PER", "I-PER"], ["O", "O", "B-LOC", "I-LOC"]]
    assert sentences[1].lines == [6, 7, 8, 9]
    chunks = read_conll(path, tag_column=2)
    assert chunks[0].tags == ["B-NP", "I-NP"]
    assert tag_set(sentences) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.mark.parametrize("text,message", [
    ("John B-PER\nSmith\n", "train.txt:2: expected a token and its tag (column -1), found 1 field"),
    ("\n\n-DOCSTART- O\n\n", "train.txt: no sentences"),
    (b"John B-PER\nSm\xe9th I-PER\n", "train.txt:2: not UTF-8 text"),
])
def test_reader_errors_name_file_and_line(tmp_path, text, message):
    path = write(str(tmp_path / "train.txt"), text)
    with pytest.raises(UserError) as info:
        read_conll(path)
    assert message in str(info.value)


def test_a_dev_tag_outside_the_training_tags_is_refused(tmp_path):
    train = read_conll(write(str(tmp_path / "train.txt"), "John B-PER\n\nParis B-LOC\n"))
    dev_path = write(str(tmp_path / "dev.txt"), "John B-PER\nworks O\n\nat O\nACME B-ORG\n")
    with pytest.raises(UserError) as info:
        attach_labels(read_conll(dev_path), tag_set(train), dev_path)
    assert "dev.txt:5: tag 'B-ORG' is not among the training tags (O, B-LOC, B-PER)" in str(info.value)


def test_labels_sit_on_first_pieces(tokenizer, tmp_path):
    sentences = read_conll(write(str(tmp_path / "t.txt"), "John B-PER\nplayers O\ncafe B-LOC\n"))
    labels = ["O", "B-LOC", "B-PER"]
    features = encode(attach_labels(sentences, labels, "t.txt"), tokenizer, 32)
    ids = [VOCAB[i] for i in features.columns["input_ids"][0]]
    assert ids == ["[CLS]", "john", "play", "##er", "##s", "ca", "##fe", "[SEP]"]
    assert features.labels[0].tolist() == [IGNORE, 2, 0, IGNORE, IGNORE, 1, IGNORE, IGNORE]
    assert features.groups.tolist() == [0]


def test_windows_cover_every_word_once_and_decode_back(tokenizer, tmp_path):
    words = ["john", "smith", "lives", "in", "new", "york", "playing", "."] * 3
    tags = ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O", "O"] * 3
    path = write(str(tmp_path / "t.txt"), "".join(f"{w} {t}\n" for w, t in zip(words, tags)) + "\nhe O\n")
    sentences = read_conll(path)
    labels = tag_set(sentences)
    features = encode(attach_labels(sentences, labels, path), tokenizer, 8)  # at most 6 pieces per window
    assert all(len(x) <= 8 for x in features.columns["input_ids"])
    # "playing" is two pieces: each window holds whole words, so the 24 words need 5 windows of at most 6 pieces
    assert features.groups.tolist() == [0, 0, 0, 0, 0, 1]
    firsts = [int((row != IGNORE).sum()) for row in features.labels]
    assert sum(firsts[:5]) == 24 and firsts[5] == 1
    # logits that put each label where the features hold it: decoding must return the gold tags
    logits = []
    for row in features.labels:
        z = np.zeros((len(row), len(labels)))
        for position, label in enumerate(row):
            if label != IGNORE:
                z[position, label] = 1.0
        logits.append(z)
    predicted, gold = word_labels(logits, features)
    assert [[labels[i] for i in p] for p in predicted] == [s.tags for s in sentences]
    assert gold == [s.label_ids for s in sentences]
    tags = [[labels[i] for i in p] for p in predicted]
    assert entity_scores(tags, [s.tags for s in sentences]) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_entity_scores_hand_computed(tmp_path):
    sentences = read_conll(write(str(tmp_path / "t.txt"), "John B-PER\nSmith I-PER\nin O\nParis B-LOC\n"))
    # one of two entities found, nothing spurious; a wrong boundary counts as a miss and a false alarm
    gold = [s.tags for s in sentences]
    assert entity_scores([["B-PER", "I-PER", "O", "O"]], gold) == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3})
    assert entity_scores([["B-PER", "O", "O", "B-LOC"]], gold) == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5})


def test_collate_pads_token_labels_with_ignore(tokenizer, tmp_path):
    sentences = read_conll(write(str(tmp_path / "t.txt"), "john B-PER\n\nnew B-LOC\nyork I-LOC\n"))
    features = encode(attach_labels(sentences, tag_set(sentences), "t.txt"), tokenizer, 16)
    batch = collate(features, np.array([0, 1]))
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 4)
    assert batch["labels"][0].tolist() == [IGNORE, 3, IGNORE, IGNORE]  # [CLS] john [SEP] + padding
