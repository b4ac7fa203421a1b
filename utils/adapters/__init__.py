"""The registry: architecture names -> adapter classes, and the few functions scripts call to build, load and
save any model. A folder's config.json names the adapter that wrote it (key "distill_arch"); folders without it
(PaddleNLP or Hugging Face checkpoints) are BERT-family.

Adding an architecture: write utils/adapters/<arch>.py with an Adapter subclass (see base.py) and add one entry
to ARCHS below.
"""
import importlib
import os

from utils.adapters.base import ARCH_KEY, read_config
from utils.errors import UserError
from utils.files import write_folder
from utils.models import HEAD_KEY, load_tokenizer

# name -> (module, class); imported on first use so that `--help` stays fast
ARCHS = {"bert": ("utils.adapters.bert", "BertAdapter"),
         "mobilebert": ("utils.adapters.mobilebert", "MobileBertAdapter"),
         "bilstm": ("utils.adapters.bilstm", "BiLSTMAdapter"),
         "cnn": ("utils.adapters.cnn", "CNNAdapter"),
         "bow": ("utils.adapters.bow", "BoWAdapter")}
WORD_ARCHS = ("bilstm", "cnn", "bow")  # students with their own word-level vocabulary
WORDPIECE_ARCHS = ("bert", "mobilebert")  # models reading the teacher's WordPiece ids


def adapter_class(arch):
    if arch not in ARCHS:
        raise UserError(f"unknown architecture '{arch}'; expected one of {', '.join(ARCHS)}")
    module, name = ARCHS[arch]
    return getattr(importlib.import_module(module), name)


def arch_of(folder):
    """The adapter that wrote a model folder (an export folder too): its config's "distill_arch", else bert."""
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        return "bert"  # a PaddleNLP model name, or a folder that load_model will explain
    arch = read_config(folder).get(ARCH_KEY, "bert")  # (read_config names a file that is not a JSON object)
    if arch not in ARCHS:
        raise UserError(f"{ARCH_KEY} '{arch}' is not one of {', '.join(ARCHS)}", path)
    return arch


def check_max_length(max_seq_length, limit, source):
    """--max_seq_length within what the model can read (a BERT's position embeddings); past it Paddle fails deep
    inside a kernel, so say the limit instead."""
    if limit is not None and max_seq_length > limit:
        raise UserError(f"--max_seq_length {max_seq_length} is longer than this model reads ({limit} positions); "
                        f"use at most {limit}", source)


def check_lengths(max_seq_length, models):
    """check_max_length for every (adapter, where it came from) of a run, teachers and students alike: the one
    check the training scripts call once their models are built and before anything is written."""
    for model, source in models:
        check_max_length(max_seq_length, model.max_length, source)


def load_adapter(folder, num_labels=None, **label_info):
    """Any trained model folder, whatever its architecture."""
    return adapter_class(arch_of(folder)).load(folder, num_labels=num_labels, **label_info)


def load_encoder(folder):
    """The text -> arrays side of a model or export folder, without its weights (predict.py)."""
    arch = arch_of(folder)
    if arch in WORDPIECE_ARCHS:
        from utils.adapters.bert import BertEncoder
        return BertEncoder(load_tokenizer(folder))
    from utils.adapters.words import WordEncoder
    return WordEncoder.load(folder)


def save_adapter(adapter, target, extra_files=None):
    """adapter.save into a folder built under a temporary name and swapped in whole (utils.files.write_folder).

    `extra_files`: {file name: callable(path)} for anything else that belongs with the weights.
    """

    def fill(folder):
        adapter.save(folder)
        for name, write in (extra_files or {}).items():
            write(os.path.join(folder, name))
    write_folder(target, fill)


def build_student(source, teacher, num_labels, *, init="pretrained", examples=(), options=None, vectors=None,
                  layer_map_fn=None, projection=None, intermediate=False):
    """The student adapter: a word model built from the training texts (bilstm, cnn, bow), a MobileBERT-style one
    (a shape such as mobilebert-6l-384d-128b), a saved student folder, or a TinyBERT student (a checkpoint name or
    folder, or a shape such as 4l-312d; see adapters/bert.py)."""
    from utils.adapters import mobilebert
    arch = source if source in WORD_ARCHS else arch_of(source) if os.path.isdir(source) else "bert"
    if intermediate and arch in WORD_ARCHS:
        raise UserError(f"a {arch} student has no transformer layers to match: it learns from the teacher's "
                        "predictions only (drop --intermediate_distill and the config's intermediate_matches)")
    if source in WORD_ARCHS:
        from utils.adapters.words import WordEncoder
        if examples and not hasattr(examples[0], "text_a"):
            raise UserError(f"a {source} student classifies whole texts; token classification needs a WordPiece "
                            "student (a shape such as 4l-312d, a MobileBERT shape, or a model folder)")
        if not examples:
            raise UserError(f"a {source} student builds its vocabulary from the training set, which is empty")
        pair = bool(examples) and examples[0].text_b is not None
        texts = (t for e in examples for t in (e.text_a, e.text_b) if t is not None)
        encoder = WordEncoder.build(texts, pair, options["min_count"], options["max_vocab_size"])
        return adapter_class(source).build(encoder, num_labels, options, vectors)
    if arch == "mobilebert" and init == "random":
        raise UserError("--student_init random with a saved MobileBERT folder: pass its shape (e.g. "
                        "mobilebert-6l-384d-128b) for fresh weights, or --student_init pretrained to load it", source)
    if arch not in WORDPIECE_ARCHS or arch == "mobilebert":
        student = load_adapter(source, num_labels=num_labels)
        if arch == "mobilebert" and student.encoder.signature() != teacher.encoder.signature():
            raise UserError("the student's vocabulary differs from the teacher's; a MobileBERT student shares the "
                            "teacher's tokenizer", source)
        return student
    if teacher.arch not in WORDPIECE_ARCHS:
        raise UserError(f"a TinyBERT student shares its teacher's WordPiece vocabulary and maps onto its layers; "
                        f"the first teacher is a {teacher.arch} model: use a BERT-family teacher, or a bilstm, cnn "
                        "or bow student")
    if mobilebert.is_shape(source):
        if init == "teacher":
            raise UserError(f"--student_init teacher copies teacher layers; {source} has another inside width: use "
                            "--student_init random (or pretrained with a general_distill.py folder)")
        return mobilebert.fresh_student(source, teacher, num_labels)
    from utils.adapters.bert import tinybert_student
    return tinybert_student(source, init, teacher, num_labels, layer_map_fn, projection, intermediate)


def check_head(teacher, label_info, path):
    """A teacher whose outputs are read must have the task's head and output count."""
    head = label_info.get(HEAD_KEY, "sequence")
    if teacher.head != head:
        from utils.tasks import by_head
        raise UserError(f"the teacher has a {teacher.head} head; this task needs a {head} head (fine-tune it "
                        f"with {by_head(head).SCRIPT})", path)
    if teacher.num_labels != label_info["num_labels"]:
        raise UserError(f"the teacher has {teacher.num_labels} outputs; the task needs {label_info['num_labels']}",
                        path)


def load_teachers(paths, label_info, outputs_read=True):
    """Every teacher in eval mode (dropout off: targets must not be noisy); all must tokenise alike, since the
    batch carries one teacher-side encoding. outputs_read False: no loss reads a teacher's output (a gold-only
    twin), so a teacher only lends its tokenizer, and any checkpoint with that tokenizer serves, whatever its head
    (a twin given the pretrained checkpoint then knows nothing of the fine-tuned teacher)."""
    teachers = []
    for path in paths:
        teacher = load_adapter(path)  # its own classifier: a wrong size is refused, never silently replaced
        if outputs_read:
            check_head(teacher, label_info, path)
        if teachers and teacher.encoder.signature() != teachers[0].encoder.signature():
            raise UserError("this teacher's vocabulary differs from the first teacher's; all must share one "
                            "tokenizer", path)
        teacher.eval()
        teachers.append(teacher)
    return teachers
