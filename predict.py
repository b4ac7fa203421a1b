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
from utils.cli import add_task_args, task_options
from utils.errors import UserError, exits_cleanly, first_line
from utils.files import check_output_file, read_json, write_json
from utils.inference import ENGINES, EXPORT_INFO, graph_file
from utils.models import HEAD_KEY, quiet_paddlenlp
from utils.tasks import by_head, task_type

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


def read_examples(args, labels, head):
    """(examples, task spec or None, name for the output file) from --input or a task split, read by the model's
    task type."""
    kind = by_head(head)
    if args.input:
        if kind.read_lines is None:
            raise UserError(kind.REFUSES["input"])
        return kind.read_lines(args.input), None, os.path.splitext(os.path.basename(args.input))[0]
    if task_type(args.task_name) is not kind:
        raise UserError(f"a model with a {head} head cannot predict --task_name {args.task_name}", args.model_dir)
    examples, spec = kind.read_split(args.task_name, args.data_dir, args.glue_dir, task_options(args), args.split,
                                     labels, args.model_dir)
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
    from utils.training import batched_logits
    quiet_paddlenlp()
    graph_file(args.model_dir)  # a clear error before anything else for a folder that is not an export
    info = read_json(os.path.join(args.model_dir, EXPORT_INFO), "the export's description (written by "
                     "export_model.py; export the model again)")
    labels = label_names(args.model_dir)
    head = read_config(args.model_dir).get(HEAD_KEY, "sequence")
    examples, spec, name = read_examples(args, labels, head)
    suffix = by_head(head).SUFFIX
    output = args.output_file or os.path.join(args.model_dir, f"predictions-{name}.{suffix}")
    check_output_file(output)
    engine = open_engine(args)
    encoder = load_encoder(args.model_dir)
    max_seq_length = args.max_seq_length or info.get("max_seq_length", 128)
    check_max_length(max_seq_length, info.get("max_length"), args.model_dir)
    features = encoder.encode(examples, max_seq_length, regression=labels is None)
    logits = batched_logits(engine, features, args.batch_size, desc="predict")
    by_head(head).write_predictions(output, examples, logits, features, labels, spec)
    print(f"wrote {len(examples)} predictions to {output}")
    if spec is not None:  # the split has gold labels (answers)
        results = {f"{args.split}_{k}": v for k, v in spec.compute_metrics(logits, features).items()}
        metrics = os.path.splitext(output)[0] + ".json"
        write_json(metrics if metrics != output else os.path.splitext(output)[0] + ".metrics.json", results)
        print(" ".join(f"{k}={v:.4f}" for k, v in results.items()))
        return results
    return output


if __name__ == "__main__":
    main(sys.argv[1:])
