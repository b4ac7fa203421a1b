"""Attention as one onnxruntime operator, for exports that never leave this process (teacher labelling).

paddle2onnx writes each self-attention as reshapes, four transposes (queries, keys, values to [batch, heads,
length, head size] and back), a scaled product, the additive padding mask, a softmax and a second product. On a
short-row teacher those small operators cost more than their arithmetic: the transposes alone took 14-20% of an
INT8 teacher's time (docs/BENCHMARKS.md, "Teacher labelling speed"). `fuse_attention` replaces each such core
by onnxruntime's `com.microsoft.MultiHeadAttention`, which reads the projections in [batch, length, hidden] and
writes the same, and keeps the projections as plain MatMuls (so dynamic INT8 quantization still reaches them).
The file then runs on onnxruntime only, which is why export_model.py never writes it: labels.py's temporary
exports do (`make_engines(..., tuned=True)`).

Cores that do not match the pattern are left as they are (MobileBERT's, which PaddleNLP scales after the
product). The rewritten graph is checked against the original on a probe batch padded with id 0 (the pad id of
the BERT vocabularies here); a difference over 1e-4, or any failure to build, load or run it, leaves the file as
it was.
"""
import collections
import os

import numpy as np

PROBE_TOLERANCE = 1e-4


def fuse_attention(path):
    """Rewrite the ONNX file at `path` in place (folded, attention cores fused) when that is exact on a probe
    batch; returns the number of attention cores fused (0: the file is unchanged)."""
    try:
        return _fuse(path)
    except Exception:  # a graph or runtime this cannot handle (an onnxruntime without the operator): the plain
        return 0       # graph labels the same; the rewrite is only an optimisation


def _fuse(path):
    import tempfile

    import onnx
    import onnxruntime
    from onnxruntime.quantization.shape_inference import quant_pre_process
    onnxruntime.set_default_logger_severity(3)
    if not any(node.op_type == "Softmax" for node in onnx.load(path, load_external_data=False).graph.node):
        return 0  # no attention (a word student's graph): nothing to fold for
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path) or ".") as tmp:
        folded, candidate = os.path.join(tmp, "folded.onnx"), os.path.join(tmp, "fused.onnx")
        # constants folded, identities gone; the file is tagged as pre-processed, which quantize_int8 reads
        quant_pre_process(path, folded, skip_symbolic_shape=True)
        model = onnx.load(folded)
        fused = rewrite_attention(model.graph)
        if not fused:
            return 0
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
        onnx.save(model, candidate)
        if not same_outputs(folded, candidate):
            return 0
        os.replace(candidate, path)
    return fused


class _Graph:
    """Who produces and who consumes each tensor of a graph, and the constant values it holds."""

    def __init__(self, graph):
        from onnx import numpy_helper
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers = collections.defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.outputs = {o.name for o in graph.output}
        self.constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)

    def made_by(self, name, op_type):
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    def only_consumer(self, name, op_type):
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None


def _perm(node):
    from onnx import helper
    return [list(helper.get_attribute_value(a)) for a in node.attribute if a.name == "perm"][0]


def match_core(g, softmax):
    """The nodes of one attention core ending in `softmax`'s product, as a dict, or None when the softmax is not
    one: Reshape+Transpose of q (scaled by a constant), k (to [b, h, d, l]) and v, q.k + mask, softmax,
    product with v, Transpose back, Reshape to [b, l, hidden]."""
    add = g.made_by(softmax.input[0], "Add")
    scores = add and g.made_by(add.input[0], "MatMul")
    scale = scores and g.made_by(scores.input[0], "Mul")
    if scale is None or scale.input[1] not in g.constants or g.constants[scale.input[1]].size != 1:
        return None
    tq, tk = g.made_by(scale.input[0], "Transpose"), g.made_by(scores.input[1], "Transpose")
    context = g.only_consumer(softmax.output[0], "MatMul")
    tv = context and g.made_by(context.input[1], "Transpose")
    to = context and g.only_consumer(context.output[0], "Transpose")
    ro = to and g.only_consumer(to.output[0], "Reshape")
    if None in (tq, tk, tv, ro) or context.input[0] != softmax.output[0]:
        return None
    if (_perm(tq), _perm(tk), _perm(tv), _perm(to)) != ([0, 2, 1, 3], [0, 2, 3, 1], [0, 2, 1, 3], [0, 2, 1, 3]):
        return None
    rq, rk, rv = (g.made_by(t.input[0], "Reshape") for t in (tq, tk, tv))
    inner = [rq, rk, rv, tq, tk, tv, scale, scores, add, softmax, context, to]
    if None in (rq, rk, rv) or any(len(g.consumers[n.output[0]]) != 1 or n.output[0] in g.outputs for n in inner):
        return None  # a core tensor read elsewhere (or returned) would lose its producer
    shape = g.constants.get(rq.input[1])
    if shape is None or shape.size != 4 or shape[2] <= 0:
        return None
    return {"nodes": inner + [ro],
            "q": rq.input[0], "k": rk.input[0], "v": rv.input[0], "mask": add.input[1], "out": ro.output[0],
            "heads": int(shape[2]), "scale": float(g.constants[scale.input[1]].reshape(-1)[0])}


def rewrite_attention(graph):
    """Replace every matched attention core of `graph` by a MultiHeadAttention node; returns how many. The
    additive mask ([b, 1, 1, l], 0 where a key counts) becomes the key padding mask the operator takes
    ([b, l] int32, 1 where a key counts) once per distinct mask."""
    from onnx import TensorProto, helper, numpy_helper
    g = _Graph(graph)
    replaced, added, padding = set(), {}, {}
    for softmax in [n for n in graph.node if n.op_type == "Softmax"]:
        core = match_core(g, softmax)
        if core is None:
            continue
        mask = core["mask"]
        new = []
        if mask not in padding:
            names = [f"{mask}_{suffix}" for suffix in ("axes", "zero", "2d", "keep", "keys")]
            graph.initializer.extend([numpy_helper.from_array(np.array([1, 2], np.int64), names[0]),
                                      numpy_helper.from_array(np.array(0, np.float32), names[1])])
            new += [helper.make_node("Squeeze", [mask, names[0]], [names[2]]),
                    helper.make_node("Equal", [names[2], names[1]], [names[3]]),
                    helper.make_node("Cast", [names[3]], [names[4]], to=TensorProto.INT32)]
            padding[mask] = names[4]
        new.append(helper.make_node("MultiHeadAttention", [core["q"], core["k"], core["v"], "", padding[mask]],
                                    [core["out"]], domain="com.microsoft", num_heads=core["heads"],
                                    scale=core["scale"]))
        added[id(core["nodes"][-1])] = new  # placed where the core's last node was: every input exists by then
        replaced.update(id(n) for n in core["nodes"])
    if not replaced:
        return 0
    nodes = []
    for node in graph.node:
        nodes.extend(added.get(id(node), []) if id(node) in replaced else [node])
    del graph.node[:]
    graph.node.extend(nodes)
    return sum(1 for n in nodes if n.op_type == "MultiHeadAttention")


def probe_inputs(session, rows=3, length=9):
    """Integer inputs of every kind the graph takes: ids 2..50 with a tail of pad id 0 on all but the first row,
    so the padding mask matters; token types 0."""
    ids = np.tile(np.arange(1, length + 1, dtype=np.int64) % 50 + 1, (rows, 1))
    for r in range(1, rows):
        ids[r, length - 2 * r:] = 0
    feeds = {}
    for spec in session.get_inputs():
        feeds[spec.name] = np.zeros_like(ids) if "type" in spec.name else ids
    return feeds


def same_outputs(original, candidate):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    sessions = [onnxruntime.InferenceSession(f, options, providers=["CPUExecutionProvider"])
                for f in (original, candidate)]
    feeds = probe_inputs(sessions[0])
    outs = [s.run(None, feeds) for s in sessions]
    return all(a.shape == b.shape and np.abs(a - b).max() <= PROBE_TOLERANCE for a, b in zip(*outs))
