"""What intermediate-layer distillation compares: which layers, captured how, projected how.

Layer maps are data: a list of (student layer, teacher layer) pairs where 0 is the embedding output and
i the output of transformer layer i. The same pairs select hidden states and attention maps (layer i's
attention belongs to pair (i, g(i)) for i >= 1).
"""
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
