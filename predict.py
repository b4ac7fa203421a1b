"""Batch prediction with an exported model (export_model.py) through Paddle Inference or onnxruntime.

    python predict.py --model_dir out/sst2/export --task_name SST-2 --glue_dir GLUE --split dev
    python predict.py --model_dir out/sst2/export --input texts.txt          # one text per line (TAB for pairs)

    python predict.py --model_dir out/ner/export --task_name conll --data_dir DATA --split dev   # NER
    python predict.py --model_dir out/ner/export --input sentences.txt   # one sentence a line (words by spaces)

    python predict.py --model_dir out/qa/export --task_name squad --data_dir DATA --split dev         # QA

Writes a TSV (index, text(s), predicted label, a probability per label; the score for regression); for a
token-classification model CoNLL-style lines (word, predicted tag, the file's tag); for a QA model a JSON
object {question id: answer text}. When the input has labels it prints the task's metrics and writes them to
OUTPUT.json.
"""
import argparse
import os
import sys

from utils.process import configure  # first: settings paddle reads when it loads
configure()
import numpy as np

from utils.cli import add_task_args
from utils.errors import UserError, exits_cleanly, first_line
from utils.files import atomic_file, check_output_file, read_json, text_lines, write_json
from utils.glue import Example, get_task, load_split, task_dir
from utils.inference import ENGINES, EXPORT_INFO, graph_file
from utils.models import HEAD_KEY, quiet_paddlenlp
from utils.tasks import spans, tokens

BACKENDS = {"paddle": "paddle_inference", "onnx": "onnxruntime"}  # --backend's names for two engines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", required=True, help="folder written by export_model.py")
    p.add_argument("--input", help="a text file, one example per line (text, or text TAB text for pairs); "
                                   "instead of a task split")
    p.add_argument("--split", default="dev", help="task split to predict (dev, train, dev_matched, ...)")
    p.add_argument("--output_file", help="predictions TSV (default: MODEL_DIR/predictions-<split or input>.tsv)")
    p.add_argument("--max_seq_length", type=int, help="truncation length (default: the export's)")
    p.add_argument("--batch_size", type=int, default=32)
    e = p.add_argument_group("engine")
    e.add_argument("--backend", choices=BACKENDS, default="paddle",
                   help="Paddle Inference (default) or onnxruntime (needs model.onnx and onnxruntime)")
    e.add_argument("--int8", action="store_true", help="run model.int8.onnx (export_model.py --quantize int8) on "
                                                       "onnxruntime")
    e.add_argument("--engine", choices=ENGINES, help="the engine by name, over --backend and --int8 (export_model.py "
                                                     "--engine NAME writes its file)")
    e.add_argument("--device", default="cpu", help="cpu or gpu[:N] (Paddle Inference)")
    e.add_argument("--threads", type=int, help="CPU threads (default OMP_NUM_THREADS)")
    e.add_argument("--onednn", action=argparse.BooleanOptionalAction, default=True, help="oneDNN kernels on CPU")
    add_task_args(p, task_required=False)  # --input needs no task
    args = p.parse_args(argv)
    if (args.input is None) == (args.task_name is None):
        raise UserError("pass either --task_name (with --glue_dir/--data_dir) and --split, or --input FILE")
    for name in ("batch_size", "max_seq_length", "threads"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name} must be positive, got {value}")
    return args


def read_texts(path):
    examples, first = [], None  # first: (line number, field count) of the first example, which sets the kind
    for lineno, line in text_lines(path, "a text file with one example per line"):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) > 2:
            raise UserError(f"expected a text or two tab-separated texts, found {len(fields)} fields", path, lineno)
        first = first or (lineno, len(fields))
        if len(fields) != first[1]:
            kinds = {1: "a single text", 2: "a pair (two tab-separated texts)"}
            raise UserError(f"{kinds[len(fields)]}, but line {first[0]} is {kinds[first[1]]}; expected the same "
                            "number of fields on every line (all single texts or all pairs)", path, lineno)
        examples.append(Example(fields[0], fields[1] if len(fields) == 2 else None, 0))
    if not examples:
        raise UserError("no examples; expected at least one non-empty line", path)
    return examples


def label_names(folder):
    from utils.adapters.base import read_config
    config = read_config(folder)
    id2label = config.get("id2label") or {}
    num = config.get("num_labels") or len(id2label) or 2
    if not isinstance(id2label, dict) or not isinstance(num, int) or isinstance(num, bool) or num < 1:
        raise UserError('expected "id2label" as an object and "num_labels" as a positive integer',
                        os.path.join(folder, "config.json"))
    if num == 1 and len(id2label) <= 1:
        return None  # regression
    return [id2label.get(str(i), str(i)) for i in range(len(id2label) or num)]


def write_predictions(path, examples, logits, labels):
    with atomic_file(path) as f:
        pair = examples[0].text_b is not None
        texts = ["text_a", "text_b"] if pair else ["text"]
        if labels is None:
            f.write("\t".join(["index"] + texts + ["score"]) + "\n")
            for i, (e, row) in enumerate(zip(examples, logits)):
                f.write("\t".join([str(i), e.text_a] + ([e.text_b] if pair else []) + [f"{row[0]:.6f}"]) + "\n")
        else:
            z = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = z / z.sum(axis=1, keepdims=True)
            f.write("\t".join(["index"] + texts + ["prediction"] + [f"prob_{n}" for n in labels]) + "\n")
            for i, (e, p) in enumerate(zip(examples, probs)):
                f.write("\t".join([str(i), e.text_a] + ([e.text_b] if pair else []) + [labels[int(p.argmax())]]
                                  + [f"{x:.6f}" for x in p]) + "\n")


def read_examples(args, labels, head):
    """(examples, task spec or None, name for the output file) from --input or a task split."""
    token_head = head == "token"
    if args.input:
        if head == "span":
            raise UserError("a question-answering model reads questions with their contexts: pass --task_name "
                            "squad --data_dir DIR --split NAME (DIR/NAME.json in SQuAD v1.1 format)")
        name = os.path.splitext(os.path.basename(args.input))[0]
        return (tokens.sentences_of_lines(args.input) if token_head else read_texts(args.input)), None, name
    kind = "span" if spans.is_span_task(args.task_name) else "token" if tokens.is_token_task(args.task_name) else \
        "sequence"
    if kind != head:
        raise UserError(f"a model with a {head} head cannot predict --task_name {args.task_name}", args.model_dir)
    if head == "span":
        if not args.data_dir:
            raise UserError(f"--task_name {args.task_name} needs --data_dir (a folder with {args.split}.json)")
        task = spans.SpanTask.from_args(args)
        return spans.read_squad(os.path.join(args.data_dir, f"{args.split}.json"), task), task, args.split
    if token_head:
        if not args.data_dir:
            raise UserError(f"--task_name {args.task_name} needs --data_dir (a folder with {args.split}.txt)")
        path = os.path.join(args.data_dir, tokens.SPLIT_FILE.format(args.split))
        sentences = tokens.attach_labels(tokens.read_conll(path, args.tag_column), labels, path)
        return sentences, tokens.TokenTask(tuple(labels), name=args.task_name.lower()), args.split
    spec = get_task(args.task_name, vars(args))
    examples = load_split(spec, task_dir(spec, args.glue_dir, args.data_dir), args.split)
    if labels is not None and spec.labels is not None and list(spec.labels) != labels:
        raise UserError(f"the model's labels {labels} are not {spec.name}'s {list(spec.labels)}", args.model_dir)
    return examples, spec, args.split


def engine_name(args):
    return args.engine or ("onnxruntime_int8" if args.int8 else BACKENDS[args.backend])


def open_engine(args):
    """The exported model on the engine asked for; a damaged export is one error naming it."""
    name = engine_name(args)
    engine = ENGINES[name]
    if not engine.present(args.model_dir):
        raise UserError(f"no {engine.file}; export with {engine.export_flag or '--engine ' + name}", args.model_dir)
    if not engine.available():
        raise UserError(f"the {name} engine needs {engine.module}: pip install {engine.module}")
    try:
        return engine.load(args.model_dir, args.threads, args.device, args.onednn)
    except Exception as err:  # each runtime raises its own types for a damaged graph or weights file
        raise UserError(f"cannot load the exported model ({first_line(err)}); its files are damaged or incomplete: "
                        "export it again with export_model.py", args.model_dir) from None


@exits_cleanly
def main(argv=None):
    args = parse_args(argv)
    from utils.adapters import check_max_length, load_encoder
    from utils.adapters.base import read_config
    from utils.training import batched_logits, task_metrics
    quiet_paddlenlp()
    graph_file(args.model_dir)  # a clear error before anything else for a folder that is not an export
    info = read_json(os.path.join(args.model_dir, EXPORT_INFO), "the export's description (written by "
                     "export_model.py; export the model again)")
    labels = label_names(args.model_dir)
    head = read_config(args.model_dir).get(HEAD_KEY, "sequence")
    examples, spec, name = read_examples(args, labels, head)
    suffix = {"token": "txt", "span": "json"}.get(head, "tsv")
    output = args.output_file or os.path.join(args.model_dir, f"predictions-{name}.{suffix}")
    check_output_file(output)
    engine = open_engine(args)
    encoder = load_encoder(args.model_dir)
    max_seq_length = args.max_seq_length or info.get("max_seq_length", 128)
    check_max_length(max_seq_length, info.get("max_length"), args.model_dir)
    features = encoder.encode(examples, max_seq_length, regression=labels is None)
    logits = batched_logits(engine, features, args.batch_size, desc="predict")
    if head == "token":
        tokens.write_tagged(output, examples, tokens.word_labels(logits, features)[0], labels, gold=spec is not None)
    elif head == "span":  # {question id: answer text}, as the SQuAD evaluation script reads predictions
        write_json(output, spans.decode(logits, features, spec.max_answer_length, spec.n_best_size))
    else:
        write_predictions(output, examples, logits, labels)
    print(f"wrote {len(examples)} predictions to {output}")
    if spec is not None and (head != "span" or any(q.answers for q in examples)):
        results = {f"{args.split}_{k}": v for k, v in task_metrics(spec, logits, features).items()}
        metrics = os.path.splitext(output)[0] + ".json"
        write_json(metrics if metrics != output else os.path.splitext(output)[0] + ".metrics.json", results)
        print(" ".join(f"{k}={v:.4f}" for k, v in results.items()))
        return results
    return output


if __name__ == "__main__":
    main(sys.argv[1:])
