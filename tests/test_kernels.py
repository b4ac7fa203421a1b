"""--cpu_kernels compiled (utils/kernels.py, utils/kernels.cc): the C++ operators against Paddle's own kernels, the
layer swap and its undo, and a training run through main() either way."""
import json
import shutil

import numpy as np
import pytest
from conftest import ROOT  # noqa: F401  (puts the project on the path)

pytestmark = pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="no C++ compiler")


def forward_backward(fn, x0, upstream, params):
    import paddle
    x = paddle.to_tensor(x0, stop_gradient=False)
    for p in params:
        p.clear_gradient()
    y = fn(x)
    paddle.autograd.backward([y], [paddle.to_tensor(upstream)])
    return [y.numpy(), x.grad.numpy()] + [p.grad.numpy() for p in params]


def test_layer_norm_matches_paddle_and_hand_values():
    import paddle

    from utils import kernels
    # one row by hand: x = [1, 2, 3, 6], mean 3, variance 3.5; w = 2, b = 1 -> y = 2 * (x - 3) / sqrt(3.5) + 1
    x = paddle.to_tensor([[1.0, 2.0, 3.0, 6.0]])
    y = kernels.ops().compiled_layer_norm(x, paddle.full([4], 2.0), paddle.ones([4]), 0.0)[0].numpy()
    np.testing.assert_allclose(y[0], 2 * (np.array([1, 2, 3, 6]) - 3) / np.sqrt(3.5) + 1, rtol=1e-6)
    rng = np.random.default_rng(0)
    ln = paddle.nn.LayerNorm(48, epsilon=1e-12)
    ln.weight.set_value(rng.uniform(0.5, 1.5, 48).astype("float32"))
    ln.bias.set_value(rng.normal(size=48).astype("float32"))
    x0 = rng.normal(2.0, 3.0, (4, 7, 48)).astype("float32")
    upstream = rng.normal(size=(4, 7, 48)).astype("float32")
    want = forward_backward(ln, x0, upstream, ln.parameters())
    ln.__class__ = kernels.CompiledLayerNorm
    got = forward_backward(ln, x0, upstream, ln.parameters())
    for w, g, tol in zip(want, got, (1e-5, 1e-5, 1e-4, 1e-5)):  # y, dx, dw (a sum over 28 rows), db
        np.testing.assert_allclose(g, w, atol=tol)
    assert not np.allclose(got[1], 0)


def test_linear_bias_matches_paddle():
    import paddle

    from utils import kernels
    rng = np.random.default_rng(2)
    paddle.seed(2)
    linear = paddle.nn.Linear(24, 7)
    x0 = rng.normal(size=(3, 5, 24)).astype("float32")
    upstream = rng.normal(size=(3, 5, 7)).astype("float32")
    want = forward_backward(linear, x0, upstream, linear.parameters())
    linear.__class__ = kernels.CompiledLinear
    got = forward_backward(linear, x0, upstream, linear.parameters())
    for w, g in zip(want, got):  # y, dx, dw, db (db: dy summed over the 15 rows)
        np.testing.assert_allclose(g, w, atol=1e-5)
    np.testing.assert_allclose(got[3], upstream.reshape(15, 7).sum(0), atol=1e-5)


def test_bias_gelu_matches_linear_then_gelu():
    import paddle
    import paddle.nn.functional as F

    from utils import kernels
    # by hand: gelu(0) = 0, gelu(1) = 0.5 * (1 + erf(1 / sqrt 2)) = 0.841345; the bias 1 is added first
    y = kernels.ops().compiled_bias_gelu(paddle.to_tensor([[-1.0, 0.0]]), paddle.to_tensor([1.0, 1.0])).numpy()
    np.testing.assert_allclose(y[0], [0.0, 0.841345], atol=1e-6)
    rng = np.random.default_rng(1)
    paddle.seed(1)
    linear = paddle.nn.Linear(24, 40)
    x0 = rng.normal(size=(3, 5, 24)).astype("float32")
    upstream = rng.normal(size=(3, 5, 40)).astype("float32")
    want = forward_backward(lambda x: F.gelu(linear(x)), x0, upstream, linear.parameters())
    linear.__class__ = kernels.LinearGelu
    got = forward_backward(linear, x0, upstream, linear.parameters())
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, atol=2e-5)


def test_swap_keeps_logits_and_parameter_names_and_undoes(tiny_teacher):
    import paddle

    from utils import kernels
    from utils.adapters import load_adapter
    model = load_adapter(tiny_teacher)
    model.eval()
    ids = paddle.to_tensor([[2, 5, 9, 7, 3], [2, 11, 4, 3, 0]], dtype="int64")
    batch = {"input_ids": ids, "token_type_ids": paddle.zeros_like(ids)}
    before = model(batch)["logits"].numpy()
    names = [n for n, _ in model.named_parameters()]
    # 2 layers: the embeddings' LayerNorm and two per layer (5); each layer's attention (2) and feed-forward block
    # (2); the Dropouts of the embeddings, three per layer and the classifier's (8); the other Linears: q, k, v,
    # out and the second feed-forward one per layer, the pooler's and the classifier (12)
    assert kernels.use(model, "compiled", "cpu") == 29
    assert kernels.use(model, "paddle", "cpu") == 0 and kernels.use(model, "compiled", "gpu:0") == 0
    kinds = {type(layer).__name__ for layer in model.sublayers()}
    assert {"CompiledLayerNorm", "LinearGelu", "CompiledDropout", "CompiledAttention", "CompiledLinear"} <= kinds
    assert not {"LayerNorm", "Dropout", "MultiHeadAttention", "Linear"} & kinds
    from utils.adapters.bert import Capture
    capture = Capture(model.model)
    np.testing.assert_allclose(model(batch)["logits"].numpy(), before, atol=1e-5)
    assert [n for n, _ in model.named_parameters()] == names
    kept = [capture.scores(i).numpy() for i in (1, 2)]  # the attention layers' own scores, not recomputed
    assert all(capture.scores(i) is capture.attention[i].scores for i in (1, 2))
    assert not any(layer._buffers for layer in model.sublayers())  # nothing kept becomes a buffer or is saved
    kernels.restore(model)
    kinds = {type(layer).__name__ for layer in model.sublayers()}
    assert not {"CompiledLayerNorm", "LinearGelu", "CompiledDropout", "CompiledAttention", "CompiledLinear"} & kinds
    assert {"LayerNorm", "Dropout", "MultiHeadAttention", "Linear"} <= kinds
    np.testing.assert_array_equal(model(batch)["logits"].numpy(), before)
    for i, scores in zip((1, 2), kept):  # recomputed from the q/k projections after the undo: the same scores
        np.testing.assert_allclose(capture.scores(i).numpy(), scores, atol=1e-5)
        assert getattr(capture.attention[i], "scores", None) is None
    capture.remove()


def attention_case(dropout):
    import paddle
    paddle.seed(5)
    attention = paddle.nn.MultiHeadAttention(24, 3, dropout=dropout)
    rng = np.random.default_rng(5)
    x0 = rng.normal(size=(3, 5, 24)).astype("float32")
    upstream = rng.normal(size=(3, 5, 24)).astype("float32")
    mask = np.zeros((3, 1, 1, 5), dtype="float32")
    mask[1, 0, 0, 3:] = -1e4  # the second sequence has two padding positions
    return attention, x0, upstream, paddle.to_tensor(mask)


def test_attention_matches_paddle_with_a_key_mask():
    from utils import kernels
    attention, x0, upstream, mask = attention_case(0.0)
    attention.train()
    params = attention.parameters()
    want = forward_backward(lambda x: attention(x, x, x, mask), x0, upstream, params)
    attention.__class__ = kernels.CompiledAttention
    got = forward_backward(lambda x: attention(x, x, x, mask), x0, upstream, params)
    for w, g in zip(want, got):  # output, dx, then each projection's weight and bias gradients
        np.testing.assert_allclose(g, w, atol=2e-5)
    assert np.abs(got[1]).max() > 1e-2


def test_attention_with_a_full_mask_or_weights_asked_for_follows_paddle():
    import paddle

    from utils import kernels
    attention, x0, _, _ = attention_case(0.0)
    attention.eval()
    x = paddle.to_tensor(x0)
    causal = paddle.to_tensor(np.triu(np.full((5, 5), -1e4, dtype="float32"), 1)[None, None])  # [1, 1, 5, 5]
    want = attention(x, x, x, causal).numpy()
    attention.need_weights = True
    want_out, want_weights = (t.numpy() for t in attention(x, x, x, None))
    attention.__class__ = kernels.CompiledAttention
    np.testing.assert_array_equal(attention(x, x, x, causal)[0].numpy(), want)  # Paddle's own forward: exact
    assert attention.scores is None  # nothing kept from the fallback
    out, weights = attention(x, x, x, None)  # compiled, and the weights returned as Paddle returns them
    np.testing.assert_allclose(out.numpy(), want_out, atol=2e-5)
    np.testing.assert_allclose(weights.numpy(), want_weights, atol=1e-6)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, atol=1e-6)


def test_attention_dropout_gradient_matches_finite_differences():
    import paddle

    from utils import kernels
    attention, x0, upstream, mask = attention_case(0.3)
    attention.train()
    attention.__class__ = kernels.CompiledAttention

    def objective(x):
        paddle.seed(11)  # the same dropout masks on every call
        return float((attention(x, x, x, mask) * paddle.to_tensor(upstream)).sum())
    paddle.seed(11)
    x = paddle.to_tensor(x0, stop_gradient=False)
    out = attention(x, x, x, mask)
    paddle.autograd.backward([out], [paddle.to_tensor(upstream)])
    grad = x.grad.numpy()
    paddle.seed(12)
    assert not np.allclose(attention(paddle.to_tensor(x0), None, None, mask).numpy(), out.numpy())  # masks differ
    for index in [(0, 0, 0), (1, 2, 5), (2, 4, 23), (1, 4, 7)]:  # (1, 4, ...) is a padding position's input
        step = np.zeros_like(x0)
        step[index] = 1e-2
        numeric = (objective(paddle.to_tensor(x0 + step)) - objective(paddle.to_tensor(x0 - step))) / 2e-2
        assert abs(numeric - grad[index]) <= 2e-3 + 2e-2 * abs(grad[index]), (index, numeric, grad[index])


def test_dropout_keeps_the_rate_and_scale_and_replays_its_mask():
    import paddle

    from utils import kernels
    drop = paddle.nn.Dropout(0.25)
    drop.__class__ = kernels.CompiledDropout
    x0 = np.ones((64, 1000), dtype="float32")

    def masked(seed):
        paddle.seed(seed)
        x = paddle.to_tensor(x0, stop_gradient=False)
        y = drop(x)
        y.backward(paddle.full_like(y, 2.0))
        return y.numpy(), x.grad.numpy()
    y, dx = masked(3)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}  # dropped, or kept and scaled by 1 / (1 - p)
    assert abs((y == 0).mean() - 0.25) < 0.005  # 64,000 draws: the standard error of the rate is 0.0017
    np.testing.assert_array_equal(dx, 2.0 * y)  # the backward applies the same mask and scale
    again, _ = masked(3)
    other, _ = masked(4)
    np.testing.assert_array_equal(again, y)
    assert (other != y).mean() > 0.3  # another seed, other masks (independent masks differ in 37.5% of places)
    assert not (y[0] == y[1]).all()  # rows differ within one mask
    drop.eval()
    np.testing.assert_array_equal(drop(paddle.to_tensor(x0)).numpy(), x0)


def fine_tune_args(glue, model, out, *extra):
    return ["--task_name", "SST-2", "--glue_dir", glue, "--model_name_or_path", model, "--output_dir", str(out),
            "--max_steps", "12", "--save_steps", "6", "--logging_steps", "4", "--batch_size", "16",
            "--learning_rate", "1e-3", "--max_seq_length", "32", "--cpu_kernels", "compiled", *extra]


def test_fine_tuning_with_compiled_kernels_learns_and_resumes_exactly(tmp_path, monkeypatch, tiny_bert):
    import run_glue
    from conftest import kill_then_resume

    from utils.adapters import load_adapter
    from utils.demo import write_sst2
    glue = str(tmp_path / "glue")
    write_sst2(str(tmp_path / "glue" / "SST-2"), n_train=1000, n_dev=200, seed=7)
    args = fine_tune_args(glue, tiny_bert, tmp_path / "full")
    args[args.index("--max_steps") + 1] = "300"
    args[args.index("--save_steps") + 1] = "100"
    full = run_glue.main(args)
    # the demo task (majority label 0.5 of dev): 300 steps reach 0.88 here, 0.81 with Paddle's kernels
    assert full["eval_accuracy"] >= 0.75
    with open(tmp_path / "full" / "args.json") as f:
        assert json.load(f)["cpu_kernels"] == "compiled"
    killed = [a if a != str(tmp_path / "full") else str(tmp_path / "killed") for a in args]
    kill_then_resume(monkeypatch, 150, lambda: run_glue.main(killed), lambda: run_glue.main(killed + ["--resume"]))
    want, got = (dict(load_adapter(str(tmp_path / side / "best_model")).named_parameters())
                 for side in ("full", "killed"))
    assert want.keys() == got.keys()
    assert all(np.array_equal(want[k].numpy(), got[k].numpy()) for k in want)


def compiled_run_error(capsys, tmp_path, glue, model):
    """A compiled-kernels fine-tuning run that must stop before training: its stderr, after checking exit status 2,
    no traceback and no results written. The operators are built afresh for it and again after it."""
    import run_glue
    from utils import kernels
    kernels.ops.cache_clear()
    try:
        with pytest.raises(SystemExit) as e:
            run_glue.main(["--task_name", "SST-2", "--glue_dir", glue, "--model_name_or_path", model,
                           "--output_dir", str(tmp_path / "out"), "--max_steps", "2", "--cpu_kernels", "compiled"])
    finally:
        kernels.ops.cache_clear()
    assert e.value.code == 2
    assert not (tmp_path / "out" / "all_results.json").exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_build_failure_is_one_clear_error(monkeypatch, capsys, tmp_path, demo_glue, tiny_bert):
    import paddle.utils.cpp_extension as cpp

    def no_compiler(**kwargs):
        raise RuntimeError("command 'c++' failed: No such file or directory")
    monkeypatch.setattr(cpp, "load", no_compiler)
    err = compiled_run_error(capsys, tmp_path, demo_glue, tiny_bert)
    assert "building the C++ operators failed" in err and "kernels.cc" in err and "No such file" in err


def test_an_unwritable_build_folder_is_one_clear_error(monkeypatch, capsys, tmp_path, demo_glue, tiny_bert):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the build folder would go")
    monkeypatch.setenv("PADDLE_EXTENSION_DIR", str(blocker / "ext"))
    err = compiled_run_error(capsys, tmp_path, demo_glue, tiny_bert)
    assert "cannot write the operators' build folder" in err and str(blocker) in err
