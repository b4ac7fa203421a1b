"""--cpu_kernels compiled: the trained model's LayerNorms, its dropouts (Dropout layers and the attention weights'),
its Linears' bias (and, in each feed-forward block, bias + GELU) and its attention heads' transposes and softmax run
as C++ CPU operators (utils/kernels.cc), built by paddle.utils.cpp_extension on first use (a C++ compiler is
needed; about 10 s once, then cached) instead of Paddle's generic kernels, the slowest part of a CPU training step
after the matrix products (docs/BENCHMARKS.md, "Compiled CPU kernels").

Only the layers' classes change (and the encoder layer's activation, which moves into the first feed-forward
Linear), so parameter names, checkpoints and saved models are the same; `restore` undoes it before a model is
traced for export. LayerNorm and bias + GELU match Paddle's kernels within float rounding; dropout keeps Paddle's
rate and scaling but draws other masks (tests/test_kernels.py).
"""
import fcntl
import functools
import hashlib
import os

import paddle
import paddle.nn.functional as F

from utils.errors import UserError

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels.cc")
# -ffast-math lets the compiler vectorise erff/expf (glibc's vector variants); the shared object does not set the
# process's denormal flags (checked: no crtfastmath in the link)
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd"]


@functools.lru_cache(maxsize=None)
def ops():
    """The compiled module (built once per source and flags; a lock keeps parallel runs from building at once)."""
    from paddle.utils.cpp_extension import load
    with open(SOURCE, "rb") as f:
        name = "distill_kernels_" + hashlib.sha256(f.read() + " ".join(FLAGS).encode()).hexdigest()[:12]
    build_root = os.environ.get("PADDLE_EXTENSION_DIR", os.path.join(os.path.expanduser("~"), ".cache",
                                                                     "paddle_extensions"))
    try:
        os.makedirs(build_root, exist_ok=True)
        lock = open(os.path.join(build_root, name + ".lock"), "w")
    except OSError as e:
        raise UserError(f"--cpu_kernels compiled: cannot write the operators' build folder ({e.strerror}); set "
                        "PADDLE_EXTENSION_DIR to a writable folder, or use --cpu_kernels paddle", build_root) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return load(name=name, sources=[SOURCE], extra_cxx_cflags=FLAGS, verbose=False)
        except Exception as e:  # the compiler's own message is in e; no compiler, headers or linker all land here
            raise UserError(f"--cpu_kernels compiled: building the C++ operators failed ({type(e).__name__}: "
                            f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''}); a C++ compiler (g++) is "
                            "needed, or use --cpu_kernels paddle", SOURCE) from None


def _compiled(x):
    return x.dtype == paddle.float32 and x.place.is_cpu_place()


class CompiledLayerNorm(paddle.nn.LayerNorm):
    """paddle.nn.LayerNorm over the last axis, forward and backward in one C++ pass each."""

    def forward(self, x):
        if _compiled(x) and len(self._normalized_shape) == 1 and self.weight is not None and self.bias is not None:
            return ops().compiled_layer_norm(x, self.weight, self.bias, self._epsilon)[0]
        return super().forward(x)


class CompiledLinear(paddle.nn.Linear):
    """paddle.nn.Linear with its bias added (and its bias's gradient summed) by a C++ pass; the product is Paddle's."""

    def forward(self, x):
        if _compiled(x) and self.bias is not None:
            return ops().compiled_bias_add(paddle.matmul(x, self.weight), self.bias)
        return super().forward(x)


class LinearGelu(paddle.nn.Linear):
    """A feed-forward block's first Linear with the GELU after it: the matrix product stays Paddle's, the bias and
    GELU (forward, and backward with the bias's gradient) are one C++ pass."""

    def forward(self, x):
        if _compiled(x) and self.bias is not None:
            return ops().compiled_bias_gelu(paddle.matmul(x, self.weight), self.bias)
        return F.gelu(super().forward(x))


class CompiledDropout(paddle.nn.Dropout):
    """paddle.nn.Dropout (upscale_in_train, whole tensor) whose mask is a hash of (seed, position), computed in one
    vectorised pass and recomputed in the backward; the seed is drawn from Paddle's generator, so paddle.seed
    makes the masks reproducible and a resumed run replays them. Other masks than Paddle's kernel draws, with the
    same keep rate."""

    def forward(self, x):
        if self.mode == "upscale_in_train" and self.axis is None:
            return _dropout(self, x, self.p)
        return super().forward(x)


def _seed():
    """A compiled dropout's seed, drawn from Paddle's generator (so paddle.seed replays the masks)."""
    return int(paddle.randint(0, 2**31 - 1, [1]).item())


def _dropout(layer, x, p):
    """Dropout of x with the compiled operator (training, CPU float32) or Paddle's kernel."""
    if not layer.training or not p:
        return x
    if _compiled(x) and 0 < p < 1:
        return ops().compiled_dropout(x, _seed(), float(p))
    return F.dropout(x, p, training=True)


class CompiledAttention(paddle.nn.MultiHeadAttention):
    """paddle.nn.MultiHeadAttention with the heads' transposes, and the key mask + softmax + dropout of the weights,
    as compiled operators; the projections and the two products stay Paddle's (the q/k projections are the ones the
    intermediate matches' hooks read). A decoding cache, or a mask that is not one additive row per sequence
    ([batch, 1, 1, keys]), takes Paddle's own forward. (A C++ core for the products too was slower than oneDNN's:
    docs/BENCHMARKS.md.)"""

    def forward(self, query, key=None, value=None, attn_mask=None, cache=None):
        # kept in __dict__: a Tensor set as a Layer attribute would become one of its buffers
        self.__dict__["scores"] = None
        key = query if key is None else key
        value = query if value is None else value
        mask = self._key_mask(query, key, attn_mask)
        if cache is not None or mask is None:
            return super().forward(query, key, value, attn_mask, cache)
        kernels = ops()
        q, k, v = (kernels.compiled_split_heads(proj(x), self.num_heads)
                   for proj, x in ((self.q_proj, query), (self.k_proj, key), (self.v_proj, value)))
        product = paddle.matmul(q * (self.head_dim**-0.5), k, transpose_y=True)
        # the pre-mask scores of this forward: an attention match reads them instead of recomputing them from the
        # q/k projections (utils/adapters/bert.py Capture)
        self.__dict__["scores"] = product
        p = float(self.dropout) if self.training and self.dropout else 0.0
        weights = kernels.compiled_softmax_dropout(product, mask, _seed() if p else 0, p)[0]
        out = self.out_proj(kernels.compiled_merge_heads(paddle.matmul(weights, v)))
        return (out, weights) if self.need_weights else out

    @staticmethod
    def _key_mask(query, key, attn_mask):
        """The additive mask as [batch, keys] for the compiled softmax, or None when it does not apply."""
        if not _compiled(query):
            return None
        batch, keys = query.shape[0], key.shape[1]
        if attn_mask is None:
            return paddle.zeros([batch, keys], dtype=query.dtype)
        from paddle.nn.layer.transformer import _convert_attention_mask
        attn_mask = _convert_attention_mask(attn_mask, query.dtype)
        if list(attn_mask.shape) != [batch, 1, 1, keys] or not attn_mask.stop_gradient:
            return None
        return attn_mask.reshape([batch, keys])


def _identity(x):
    return x


def _is_exact_gelu(fn):
    """Whether an encoder layer's activation is GELU's erf form (what the fused operator computes)."""
    probe = paddle.linspace(-5.0, 5.0, 41)
    try:
        with paddle.no_grad():
            return bool(paddle.allclose(fn(probe), F.gelu(probe, approximate=False), atol=1e-6).item())
    except Exception:  # an activation that does not take a tensor this way is not GELU
        return False


SWAPS = {paddle.nn.LayerNorm: CompiledLayerNorm, paddle.nn.Dropout: CompiledDropout,
         paddle.nn.MultiHeadAttention: CompiledAttention, paddle.nn.Linear: CompiledLinear}
UNDO = {compiled: paddle_layer for paddle_layer, compiled in SWAPS.items()}


def use(model, cpu_kernels, device):
    """Swap `model`'s layers to the compiled operators (the feed-forward blocks' first Linear + exact GELU, then every
    class in SWAPS) when cpu_kernels is "compiled" and the run is on the CPU. -> how many layers were swapped."""
    if cpu_kernels != "compiled" or not str(device).startswith("cpu"):
        return 0
    ops()  # build (or load) first, so a missing compiler fails before training starts
    swapped = 0
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, paddle.nn.TransformerEncoderLayer) and type(layer.linear1) is paddle.nn.Linear \
                and _is_exact_gelu(layer.activation):
            # the encoder computes linear2(dropout(activation(linear1(x)))): GELU moves into linear1 and the
            # activation becomes the identity
            layer.linear1.__class__ = LinearGelu
            layer._paddle_activation, layer.activation = layer.activation, _identity
            swapped += 1
    for layer in model.sublayers(include_self=True):
        if type(layer) in SWAPS:
            layer.__class__ = SWAPS[type(layer)]
            swapped += 1
    return swapped


def restore(model):
    """Undo `use`: Paddle's own layers again (for tracing and export)."""
    for layer in model.sublayers(include_self=True):
        if type(layer) is CompiledAttention:
            layer.__dict__.pop("scores", None)  # Paddle's forward would leave a stale one for Capture to read
        if type(layer) in UNDO:
            layer.__class__ = UNDO[type(layer)]
        elif isinstance(layer, paddle.nn.TransformerEncoderLayer) and type(layer.linear1) is LinearGelu:
            layer.linear1.__class__ = paddle.nn.Linear
            layer.activation = layer.__dict__.pop("_paddle_activation")
