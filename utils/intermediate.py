"""What intermediate-layer distillation compares: which layers, captured how, projected how.

Layer maps are data: a list of (student layer, teacher layer) pairs where 0 is the embedding output and
i the output of transformer layer i. The same pairs select hidden states and attention maps (layer i's
attention belongs to pair (i, g(i)) for i >= 1).
"""
import paddle

from utils.errors import UserError


def uniform_layer_map(num_layers_S, num_layers_T):
    """Student layer m learns teacher layer floor(m * N_T / N_S); embeddings learn embeddings.

    12->4: 3,6,9,12; 12->6: 2,4,...,12; 6->4: 1,3,4,6; 6->3: 2,4,6. The last layers always meet.
    """
    if num_layers_S > num_layers_T:
        raise UserError(f"the student has more layers ({num_layers_S}) than the teacher ({num_layers_T}); "
                        "give --layer_map explicitly")
    return [(0, 0)] + [(m, m * num_layers_T // num_layers_S) for m in range(1, num_layers_S + 1)]


def parse_layer_map(text, num_layers_S, num_layers_T):
    """'3,6,9,12': the teacher layer for each student layer 1..N_S (embeddings always map to embeddings)."""
    try:
        layers = [int(x) for x in text.split(",")]
    except ValueError:
        raise UserError(f"--layer_map '{text}': expected comma-separated teacher layer numbers, "
                        "e.g. 3,6,9,12") from None
    if len(layers) != num_layers_S:
        raise UserError(f"--layer_map has {len(layers)} entries; the student has {num_layers_S} layers")
    bad = [t for t in layers if not 1 <= t <= num_layers_T]
    if bad:
        raise UserError(f"--layer_map entry {bad[0]} is out of range: the teacher has layers 1..{num_layers_T}")
    return [(0, 0)] + list(zip(range(1, num_layers_S + 1), layers))


class Capture:
    """Collects hidden states and pre-softmax attention scores of a paddle BERT-style encoder, via hooks.

    Scores come from the query/key projections' outputs (q k^T / sqrt(d)), so they never contain the
    -10000 that the model adds at padded keys: that constant would otherwise dominate an MSE.
    """

    def __init__(self, model, attention=True):
        base = model.base_model
        self.layers = list(base.encoder.layers)
        self.hidden, self.q, self.k = {}, {}, {}
        self.handles = [base.embeddings.register_forward_post_hook(self._keep(self.hidden, 0))]
        for i, layer in enumerate(self.layers, 1):
            self.handles.append(layer.register_forward_post_hook(self._keep(self.hidden, i)))
            if attention:
                self.handles.append(layer.self_attn.q_proj.register_forward_post_hook(self._keep(self.q, i)))
                self.handles.append(layer.self_attn.k_proj.register_forward_post_hook(self._keep(self.k, i)))

    @staticmethod
    def _keep(store, key):
        def hook(layer, inputs, output):
            store[key] = output[0] if isinstance(output, (tuple, list)) else output
        return hook

    def scores(self, i):
        """Pre-softmax attention scores of layer i (1-based): [batch, heads, seq, seq]."""
        heads = self.layers[i - 1].self_attn.num_heads
        q, k = (x.reshape([x.shape[0], x.shape[1], heads, -1]).transpose([0, 2, 1, 3]) for x in (self.q[i], self.k[i]))
        return paddle.matmul(q, k, transpose_y=True) * (q.shape[-1] ** -0.5)

    def clear(self):
        self.hidden.clear(), self.q.clear(), self.k.clear()

    def remove(self):
        for handle in self.handles:
            handle.remove()


def projection_layer(student, kind, student_layer):
    """The student-to-teacher-width projection for one student layer: TinyBERT's fit_dense(s)."""
    base = student.base_model
    return base.fit_denses[student_layer] if kind == "per_layer" else base.fit_dense


def projection_parameters(student, kind):
    base = student.base_model
    return list(base.fit_denses.parameters()) if kind == "per_layer" else list(base.fit_dense.parameters())
