"""Export a trained classifier (any best_model folder: teacher or student, any architecture) for deployment.

    python export_model.py --model_dir out/sst2/pred/best_model --output_dir out/sst2/export [--onnx]

Writes OUTPUT_DIR/inference.json + inference.pdiparams (Paddle Inference; dynamic batch and sequence
length), with --onnx also OUTPUT_DIR/model.onnx (paddle2onnx), with --engine NAME the file any engine of
utils.inference.ENGINES runs, plus config.json, the tokenizer or vocabulary
and export.json (inputs, parameters, FLOPs), so predict.py needs only this folder. The folder is built under a temporary name and renamed when complete.
"""
import argparse
import os
import shutil
import sys

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.errors import UserError, exits_cleanly, first_line
from utils.files import check_output_dir, write_folder, write_json
from utils.inference import ENGINES, EXPORT_INFO, export_static, with_sources
from utils.models import model_kind, quiet_paddlenlp


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", required=True, help="a from_pretrained classifier folder (e.g. best_model)")
    p.add_argument("--output_dir", required=True, help="the export folder to write")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx through paddle2onnx")
    p.add_argument("--quantize", choices=("int8",),
                   help="int8: also write model.int8.onnx, dynamic INT8 quantization of the matrix products and the "
                        "embeddings through onnxruntime (implies --onnx; predict.py --int8 runs it). Static "
                        "quantization calibrated on training rows was measured and is slower, with or "
                        "without VNNI (docs/BENCHMARKS.md)")
    p.add_argument("--engine", action="append", default=[], choices=[n for n, e in ENGINES.items() if e.make],
                   help="also write the file this engine runs, and those it is made from (repeatable; --onnx is "
                        "--engine onnxruntime, --quantize int8 is --engine onnxruntime_int8)")
    p.add_argument("--opset", type=int, default=14, help="ONNX opset (default 14)")
    p.add_argument("--max_seq_length", type=int, default=128,
                   help="recorded for predict.py as its default truncation length (default 128)")
    args = p.parse_args(argv)
    if not 7 <= args.opset <= 21:  # paddle2onnx 2.x writes opsets 7..21; our graphs need at least 7
        raise UserError(f"--opset must be between 7 and 21, got {args.opset}")
    if args.max_seq_length <= 0:
        raise UserError(f"--max_seq_length must be positive, got {args.max_seq_length}")
    if not os.path.isdir(args.model_dir):
        raise UserError("no such folder; expected a trained model folder (e.g. OUTPUT_DIR/best_model)",
                        args.model_dir)
    check_output_dir(args.output_dir)
    shorthands = {"--onnx": args.onnx, "--quantize int8": args.quantize == "int8"}
    args.engine = with_sources(args.engine + [n for n, e in ENGINES.items() if shorthands.get(e.export_flag)])
    return args


@exits_cleanly
def main(argv=None):
    args = parse_args(argv)
    import paddle

    from utils.adapters import check_max_length, load_adapter
    quiet_paddlenlp()
    paddle.set_device("cpu")  # the exported graph is device-independent
    if model_kind(args.model_dir) != "paddle":
        raise UserError("expected a model folder this suite or PaddleNLP wrote (model.safetensors or "
                        "model_state.pdparams); fine-tune or distil first",
                        args.model_dir)
    model = load_adapter(args.model_dir)
    check_max_length(args.max_seq_length, model.max_length, args.model_dir)
    info = {"max_length": model.max_length, "source": os.path.abspath(args.model_dir), "max_seq_length": args.max_seq_length,
            "arch": model.arch, "architecture": model.describe(), "inputs": list(model.encoder.input_names),
            "parameters": model.num_parameters(), "flops": {str(n): model.flops(n) for n in sorted({16, 32, 64, 128, 256, 512, args.max_seq_length})}}

    def fill(folder):
        export_static(model, folder)
        shutil.copy(os.path.join(args.model_dir, "config.json"), folder)
        model.encoder.save(folder)
        for engine in (ENGINES[name] for name in args.engine if ENGINES[name].make):
            try:
                engine.make(folder, args.opset)
            except OSError:
                raise  # a full disk is not an unsupported op
            except Exception as err:  # paddle2onnx and onnxruntime's quantizer raise assorted types for graphs
                raise UserError(engine.failure.format(first_line(err))) from None
            info[engine.export_key] = engine.file
            if engine.method:
                info[engine.export_key + "_method"] = engine.method
        write_json(os.path.join(folder, EXPORT_INFO), info)
    write_folder(args.output_dir, fill)
    files = [ENGINES[name].file for name in args.engine if ENGINES[name].make]
    methods = [f"; {ENGINES[name].file}: {ENGINES[name].method}" for name in args.engine if ENGINES[name].method]
    print(f"exported {args.model_dir} -> {args.output_dir} ({model.describe()}"
          f"{', with ' + ' and '.join(files) if files else ''}{''.join(methods)})")
    return args.output_dir


if __name__ == "__main__":
    main(sys.argv[1:])
