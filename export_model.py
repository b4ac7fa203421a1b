"""Export a trained classifier (any best_model folder: teacher or student) for deployment.

    python export_model.py --model_dir out/sst2/pred/best_model --output_dir out/sst2/export [--onnx]

Writes OUTPUT_DIR/inference.json + inference.pdiparams (Paddle Inference; dynamic batch and sequence
length), with --onnx also OUTPUT_DIR/model.onnx (paddle2onnx), plus config.json and the tokenizer files,
so predict.py needs only this folder. The folder is built under a temporary name and renamed when complete.
"""
import argparse
import os
import shutil
import sys
import tempfile

import utils  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from utils.errors import UserError, exits_cleanly
from utils.training import check_output_dir, write_json


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", required=True, help="a from_pretrained classifier folder (e.g. best_model)")
    p.add_argument("--output_dir", required=True, help="the export folder to write")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx through paddle2onnx")
    p.add_argument("--opset", type=int, default=14, help="ONNX opset (default 14)")
    p.add_argument("--max_seq_length", type=int, default=128,
                   help="recorded for predict.py as its default truncation length (default 128)")
    args = p.parse_args(argv)
    if not os.path.isdir(args.model_dir):
        raise UserError("no such folder; expected a trained model folder (e.g. OUTPUT_DIR/best_model)",
                        args.model_dir)
    check_output_dir(args.output_dir)
    return args


@exits_cleanly
def main(argv=None):
    args = parse_args(argv)
    import paddle
    from paddlenlp.transformers import AutoModelForSequenceClassification

    from utils.inference import copy_side_files, count_parameters, export_onnx, export_static
    from utils.models import load_model, model_kind, quiet_paddlenlp, replace_dir
    quiet_paddlenlp()
    paddle.set_device("cpu")  # the exported graph is device-independent
    if model_kind(args.model_dir) != "paddle":
        raise UserError("expected a PaddleNLP folder (model_state.pdparams); fine-tune or distil first",
                        args.model_dir)
    model = load_model(AutoModelForSequenceClassification, args.model_dir)
    parent = os.path.dirname(os.path.abspath(args.output_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(args.output_dir) + ".tmp", dir=parent)
    try:
        export_static(model, tmp)
        copy_side_files(args.model_dir, tmp)
        info = {"source": os.path.abspath(args.model_dir), "max_seq_length": args.max_seq_length,
                "parameters": count_parameters(model.config.to_dict()), "architecture": type(model).__name__}
        if args.onnx:
            try:
                export_onnx(tmp, args.opset)
            except Exception as err:  # paddle2onnx reports unsupported ops with assorted exception types
                raise UserError(f"ONNX export failed ({str(err).splitlines()[0][:160]}); the Paddle export works "
                                "without --onnx") from None
            info["onnx"] = "model.onnx"
        write_json(os.path.join(tmp, "export.json"), info)
        replace_dir(tmp, args.output_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the rename succeeded
    print(f"exported {args.model_dir} -> {args.output_dir} ({info['parameters']:,} parameters"
          f"{', with model.onnx' if args.onnx else ''})")
    return args.output_dir


if __name__ == "__main__":
    main(sys.argv[1:])
