"""Span extraction (extractive QA, SQuAD v1.1): JSON -> question + context windows (--doc_stride) -> start/end
logits per token -> n-best spans mapped back to the original context -> exact match and F1.

Contexts are split into whitespace words (with their character spans) and each word into word pieces, so a
predicted piece span maps back to whole words of the original text, accents and characters outside the
vocabulary included. Per-token labels hold the span: IGNORE on the question, separators and padding (positions
no answer can take), 0 on context pieces and [CLS], START/END bits on the answer's first/last piece, or on [CLS]
when the answer is not inside the window. span_problems turns start/end logits into two classifications over
positions with the IGNORE positions masked (TextBrewer's logits mask), so every prediction loss applies.
"""
import collections
import os
import re
import string
from dataclasses import dataclass, field

import numpy as np

from utils.batches import LABEL_PAD as IGNORE
from utils.batches import Features
from utils.errors import UserError
from utils.wordpiece import piece_ids

# the task type's protocol (utils/tasks/__init__.py)
HEAD = "span"  # start and end logits per token [batch, length, 2]
PER_POSITION = True  # the classifier reads every position's final state
KIND = "span extraction"
NAMES = ("squad",)
OPTIONS = ("doc_stride", "max_query_length", "max_answer_length", "n_best_size")
SCRIPT = "run_qa.py"
SUFFIX = "json"  # {question id: answer text}, as the SQuAD evaluation script reads predictions
SPANS_ONLY = "works for sequence and token classification; a span task (squad) distils on its training set with the " \
             "teachers running"
REFUSES = {"use_aug": "--use_aug " + SPANS_ONLY, "cache_teacher_logits": "--cache_teacher_logits " + SPANS_ONLY,
           "transfer_file": "--transfer_file works for sequence and token classification; a span task (squad) "
                            "distils on its labelled set",
           "input": "a question-answering model reads questions with their contexts: pass --task_name squad "
                    "--data_dir DIR --split NAME (DIR/NAME.json in SQuAD v1.1 format)",
           "multitask": "multitask_distill.py distils sequence-classification tasks"}
START, END = 1, 2  # label bits; [CLS] carries START | END when the window holds no answer
MASKED = -1e4  # logit of a position no answer can take


@dataclass
class Question:
    id: str
    question: str
    context: str
    answers: list  # [(text, answer_start)]
    words: list = field(default_factory=list)  # (start, end) character span of each whitespace word
    task: object = None  # the SpanTask whose window settings encode it


@dataclass(frozen=True)
class SpanTask:
    """The spec of a span-extraction task, read by the scripts like a GLUE TaskSpec."""
    name: str = "squad"
    labels: tuple = ("start", "end")
    metrics: tuple = ("exact_match", "f1")
    main_metric: str = "f1"
    dev_splits: tuple = ("dev",)
    head: str = HEAD
    is_regression: bool = False
    doc_stride: int = 128
    max_query_length: int = 64
    max_answer_length: int = 30
    n_best_size: int = 20

    @classmethod
    def from_options(cls, options):
        """The window and decoding settings from the span-extraction flags (utils/cli.py), defaults where absent."""
        return cls(**{k: options[k] for k in OPTIONS if options.get(k) is not None})

    @property
    def num_labels(self):
        return 2

    @staticmethod
    def view(logits, labels):
        return span_problems(logits, labels)

    def compute_metrics(self, logits, features):
        answers = decode(logits, features, self.max_answer_length, self.n_best_size)
        return squad_scores(answers, features.extra["questions"])


def read_squad(path, task):
    """Questions of a SQuAD v1.1 JSON file; an empty context or an answer whose text is not at its
    answer_start is an error naming the question id."""
    from utils.files import read_json
    data = read_json(path, "a SQuAD v1.1 JSON file ({\"data\": [{\"paragraphs\": [...]}]})").get("data")
    if not isinstance(data, list):
        raise UserError('expected a "data" list of articles (SQuAD v1.1)', path)
    questions = []
    for article in data:
        for paragraph in (article.get("paragraphs") or []) if isinstance(article, dict) else []:
            context, qas = paragraph.get("context"), paragraph.get("qas") or []
            for qa in qas:
                questions.append(_question(qa, context, path, task))
    if not questions:
        raise UserError("no questions; expected articles with paragraphs and qas", path)
    return questions


def _question(qa, context, path, task):
    qid = str(qa.get("id", "?"))
    if not isinstance(context, str) or not context.strip():
        raise UserError(f"question {qid}: empty context; expected the paragraph's text", path)
    if not isinstance(qa.get("question"), str) or not qa["question"].strip():
        raise UserError(f"question {qid}: no question text", path)
    answers = []
    for a in qa.get("answers") or []:
        text, start = a.get("text"), a.get("answer_start")
        if not isinstance(text, str) or not isinstance(start, int) or context[start:start + len(text)] != text \
                or not text.strip():
            raise UserError(f"question {qid}: answer {text!r} is not at answer_start {start} of its context", path)
        answers.append((text, start))
    words = [m.span() for m in re.finditer(r"\S+", context)]
    return Question(qid, qa["question"], context, answers, words, task)


def add_args(parser):
    q = parser.add_argument_group("span extraction (--task_name squad: --data_dir with train.json, dev.json in "
                                  "SQuAD v1.1 format)")
    q.add_argument("--doc_stride", type=int, default=128,
                   help="a context longer than a window continues in another window this many pieces on (default 128)")
    q.add_argument("--max_query_length", type=int, default=64, help="question pieces kept (default 64)")
    q.add_argument("--max_answer_length", type=int, default=30, help="longest answer predicted, in pieces (default 30)")
    q.add_argument("--n_best_size", type=int, default=20,
                   help="best start and end positions combined when decoding an answer (default 20)")


def load(name, data_dir, glue_dir, options, train_split="train", max_train_samples=None, max_eval_samples=None,
         with_train=True):
    """(SpanTask, train questions or None, {"dev": questions}) from data_dir's train.json and dev.json."""
    from utils.tasks import check_data_dir
    check_data_dir(name, data_dir, "train.json and dev.json", "SQuAD v1.1 format")
    task = SpanTask.from_options(options)
    train_path = os.path.join(data_dir, f"{train_split}.json")
    train = read_squad(train_path, task)
    missing = next((q for q in train if not q.answers), None)
    if missing:
        raise UserError(f"question {missing.id}: no answer; every training question needs one", train_path)
    dev = read_squad(os.path.join(data_dir, "dev.json"), task)
    return task, train[:max_train_samples] if with_train else None, {"dev": dev[:max_eval_samples]}


def read_split(name, data_dir, glue_dir, options, split, labels, model_dir=None):
    """(questions, spec) of one split for prediction; spec None when no question has an answer (nothing to
    score)."""
    if not data_dir:
        raise UserError(f"--task_name {name} needs --data_dir (a folder with {split}.json)")
    task = SpanTask.from_options(options)
    questions = read_squad(os.path.join(data_dir, f"{split}.json"), task)
    return questions, task if any(q.answers for q in questions) else None


read_lines = None  # a question needs its context: REFUSES["input"]
read_transfer = None  # a transfer question would need its context and answer: REFUSES["transfer_file"]


def write_predictions(path, examples, logits, features, labels, spec=None):
    """{question id: answer text} as JSON, decoded with the questions' own window settings."""
    from utils.files import write_json
    task = examples[0].task
    write_json(path, decode(logits, features, task.max_answer_length, task.n_best_size))


def text(question):
    return question.question + "\t" + question.context


def normalise(question):
    return (text(question),)


def digest(question):
    return f"{question.id}\t{question.question}\t{question.context}\t{question.answers}\n"


def owns(example):
    return isinstance(example, Question)


def _word_of_char(words, char):
    return next(i for i, (s, e) in enumerate(words) if s <= char < e)


def encode(questions, tokenizer, max_seq_length):
    """Features: one row per window ([CLS] question [SEP] context piece window [SEP]); groups = the question;
    extra = {"word_index": each row's context word per position (-1 elsewhere), "questions"}."""
    task = questions[0].task
    ids, types, labels, groups, word_index = [], [], [], [], []
    text_ids = piece_ids(tokenizer)
    for qi, q in enumerate(questions):
        query = text_ids(q.question)[:task.max_query_length]
        room = max_seq_length - len(query) - 3
        if room < 1:
            raise UserError(f"--max_seq_length {max_seq_length} leaves no room for the context after a "
                            f"{len(query)}-piece question; raise it or lower --max_query_length")
        pieces, piece_word = [], []
        for wi, (s, e) in enumerate(q.words):
            word = text_ids(q.context[s:e]) or [tokenizer.unk_token_id]
            pieces += word
            piece_word += [wi] * len(word)
        span = None
        if q.answers:  # the first answer trains (SQuAD's train set has one per question)
            text, start = q.answers[0]
            start += len(text) - len(text.lstrip())  # map the answer's first and last non-space characters
            first, last = _word_of_char(q.words, start), _word_of_char(q.words, start + len(text.strip()) - 1)
            span = piece_word.index(first), len(piece_word) - 1 - piece_word[::-1].index(last)
        begin = 0
        while True:
            length = min(room, len(pieces) - begin)
            offset = len(query) + 2
            row_labels = [0] + [IGNORE] * (len(query) + 1) + [0] * length + [IGNORE]
            if span and begin <= span[0] and span[1] < begin + length:
                row_labels[offset + span[0] - begin] |= START
                row_labels[offset + span[1] - begin] |= END
            else:
                row_labels[0] = START | END
            ids.append(np.asarray([tokenizer.cls_token_id] + query + [tokenizer.sep_token_id]
                                  + pieces[begin:begin + length] + [tokenizer.sep_token_id], dtype=np.int64))
            types.append(np.asarray([0] * offset + [1] * (length + 1), dtype=np.int64))
            labels.append(np.asarray(row_labels, dtype=np.int64))
            word_index.append(np.asarray([-1] * offset + piece_word[begin:begin + length] + [-1]))
            groups.append(qi)
            if begin + length >= len(pieces):
                break
            begin += min(length, task.doc_stride)
    rows = np.empty(len(labels), dtype=object)
    rows[:] = labels
    return Features({"input_ids": ids, "token_type_ids": types}, rows,
                    {"input_ids": tokenizer.pad_token_id, "token_type_ids": 0}, groups=np.asarray(groups),
                    extra={"word_index": word_index, "questions": questions})


def span_problems(logits, labels):
    """Start/end logits [B, L, 2] with per-token labels [B, L] -> ([2B, L] logits, [2B] target positions): row 2b
    is example b's start, row 2b+1 its end; positions no answer can take get MASKED logits."""
    import paddle
    allowed = (labels != IGNORE).unsqueeze(-1).expand(logits.shape)
    masked = paddle.where(allowed, logits, paddle.full_like(logits, MASKED))
    flat = masked.transpose([0, 2, 1]).reshape([-1, logits.shape[1]])
    starts = paddle.argmax(((labels == START) | (labels == START | END)).astype("int32"), axis=1)
    ends = paddle.argmax(((labels == END) | (labels == START | END)).astype("int32"), axis=1)
    return flat, paddle.stack([starts, ends], axis=1).reshape([-1])


def decode(logits, features, max_answer_length, n_best_size):
    """{question id: answer text}: over all windows of a question, the context span (start <= end, at most
    max_answer_length pieces) with the highest start + end logit among the n_best_size best starts and ends."""
    best = {}
    questions = features.extra["questions"]
    for row, qi in enumerate(features.groups):
        words = features.extra["word_index"][row]
        z = np.asarray(logits[row])
        context = np.nonzero(words >= 0)[0]
        starts = context[np.argsort(-z[context, 0])[:n_best_size]]
        ends = context[np.argsort(-z[context, 1])[:n_best_size]]
        for s in starts:
            for e in ends:
                if s <= e < s + max_answer_length:
                    score = z[s, 0] + z[e, 1]
                    if qi not in best or score > best[qi][0]:
                        best[qi] = (score, words[s], words[e])
    out = {}
    for qi, q in enumerate(questions):
        if qi in best:
            _, first, last = best[qi]
            out[q.id] = q.context[q.words[first][0]:q.words[last][1]]
        else:
            out[q.id] = ""
    return out


def normalize_answer(text):
    """SQuAD v1.1's normalisation: lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_f1(prediction, truth):
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions, questions):
    """Exact match and F1 (fractions, SQuAD v1.1 definition: the best over each question's gold answers), over
    the questions that have answers."""
    scored = [q for q in questions if q.answers]
    if not scored:
        return {"exact_match": 0.0, "f1": 0.0}
    em = sum(max(float(normalize_answer(predictions[q.id]) == normalize_answer(a)) for a, _ in q.answers)
             for q in scored)
    f1 = sum(max(answer_f1(predictions[q.id], a) for a, _ in q.answers) for q in scored)
    return {"exact_match": em / len(scored), "f1": f1 / len(scored)}
