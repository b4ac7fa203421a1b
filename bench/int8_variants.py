"""INT8 routes measured against the shipped one (onnxruntime dynamic quantization, utils.inference.quantize_int8):
writes each variant of EXPORT/model.onnx as EXPORT/v_<name>.onnx, for bench/int8_speed.py --files to time.

    .venv/bin/python bench/int8_variants.py --export out/int8/export/student --glue_dir ../shared/data/glue
    flock /tmp/cpu.lock .venv/bin/python bench/int8_speed.py --export out/int8/export/student \
        --glue_dir ../shared/data/glue --files v_dyn.onnx,v_qdq.onnx,v_qdq_cb.onnx

Static variants calibrate activation ranges (min-max) on --rows training rows of the task drawn at random (seed 0),
in batches of 32 at their own length. "opt_" variants quantize the graph onnxruntime optimises offline
(ORT_ENABLE_EXTENDED: fused LayerNorm, bias-GELU, MatMul+scale); "_cb" quantizes only products with a constant
(weight) side, as dynamic quantization does by default, leaving the attention products in FP32.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # first: settings paddle reads when it loads
configure()
import numpy as np  # noqa: E402

VARIANTS = ("dyn", "opt_dyn", "qdq", "qdq_cb", "qdq_sym", "qdq_rr", "qdq_cb_rr", "qdq_u8u8", "qdq_all", "qop",
            "qop_cb", "qop_all", "opt_qdq", "opt_qdq_cb", "opt_qop", "dyn_pt", "dyn_u8")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", required=True, help="an export folder with model.onnx (export_model.py --onnx)")
    p.add_argument("--task_name", default="SST-2")
    p.add_argument("--glue_dir", required=True, help="the GLUE folder whose training rows calibrate")
    p.add_argument("--rows", type=int, default=256, help="training rows calibrated on")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    args = p.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        p.error(f"unknown --variants {sorted(unknown)}; expected some of {', '.join(VARIANTS)}")
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from utils.adapters import load_encoder
    from utils.batches import collate, eval_batches
    from utils.tasks import load_task
    ort.set_default_logger_severity(3)
    logging.getLogger().setLevel(logging.ERROR)
    _, train, _ = load_task(args.task_name, glue_dir=args.glue_dir, max_eval_samples=1)
    pick = np.sort(np.random.RandomState(0).permutation(len(train))[:args.rows])
    features = load_encoder(args.export).encode([train[i] for i in pick], 64)
    batches = [collate(features, index) for index in eval_batches(features.lengths, 32)]
    for batch in batches:
        batch.pop("labels")

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.rewind()

        def get_next(self):
            return next(self.left, None)

        def rewind(self):
            self.left = iter(batches)

    folder = args.export
    folded = os.path.join(folder, "v_folded.onnx")  # Constant weights folded into initializers, as quantize_int8
    quant_pre_process(os.path.join(folder, "model.onnx"), folded, skip_symbolic_shape=True)
    optimised = os.path.join(folder, "v_optimised.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = optimised
    ort.InferenceSession(folded, options, providers=["CPUExecutionProvider"])
    products = ["MatMul", "Gemm", "Gather"]

    def dynamic(source, weights=QuantType.QInt8, per_channel=True):
        return lambda target: quantize_dynamic(source, target, weight_type=weights, per_channel=per_channel,
                                               op_types_to_quantize=products)

    def static(source, fmt=QuantFormat.QDQ, ops=products, weights=QuantType.QInt8, reduce_range=False, **extra):
        return lambda target: quantize_static(source, target, Batches(), quant_format=fmt, op_types_to_quantize=ops,
                                              per_channel=True, activation_type=QuantType.QUInt8, weight_type=weights,
                                              reduce_range=reduce_range, extra_options=extra)
    qop = QuantFormat.QOperator
    make = {"dyn": dynamic(folded), "opt_dyn": dynamic(optimised), "dyn_pt": dynamic(folded, per_channel=False),
            "dyn_u8": dynamic(folded, QuantType.QUInt8), "qdq": static(folded),
            "qdq_cb": static(folded, MatMulConstBOnly=True), "qdq_sym": static(folded, ActivationSymmetric=True),
            "qdq_rr": static(folded, reduce_range=True),
            "qdq_cb_rr": static(folded, reduce_range=True, MatMulConstBOnly=True),
            "qdq_u8u8": static(folded, weights=QuantType.QUInt8), "qdq_all": static(folded, ops=None),
            "qop": static(folded, qop), "qop_cb": static(folded, qop, MatMulConstBOnly=True),
            "qop_all": static(folded, qop, ops=None), "opt_qdq": static(optimised),
            "opt_qdq_cb": static(optimised, MatMulConstBOnly=True), "opt_qop": static(optimised, qop)}
    for name in args.variants.split(","):
        make[name](os.path.join(folder, f"v_{name}.onnx"))
        print(f"wrote {os.path.join(folder, f'v_{name}.onnx')}", flush=True)
    for scratch in (folded, optimised):
        os.remove(scratch)


if __name__ == "__main__":
    main()
