"""Nothing pickled is trusted: every pickle a user can hand in (model folders, checkpoints, optimizer states,
gensim vectors, a PyTorch zip) is read opcode by opcode first, and one naming anything but arrays and plain
containers is refused with one line naming the file and the global, before the payload can run."""
import io
import json
import os
import pickle
import shutil
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
from conftest import write

import run_glue
import task_distill
from utils.errors import UserError
from utils.safe_pickle import GENSIM, check_pickle_file, check_torch_zip, pickle_globals


class Payload:
    """Unpickling it creates the file `marker`: the stand-in for any code an attacker would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def evil_state(marker, protocol=4):
    """A state dict that looks like paddle.save's, with the payload among its arrays."""
    return pickle.dumps({"bert.embeddings.word_embeddings.weight": np.zeros((2, 3), np.float32),
                         "evil": Payload(marker)}, protocol=protocol)


def test_the_payload_is_live(tmp_path):
    # without the check, unpickling runs it: what every refusal below must prevent
    pickle.loads(evil_state(tmp_path / "marker"))
    assert (tmp_path / "marker").exists()


# ---- the checker on hand-made streams

@pytest.mark.parametrize("protocol", range(0, 6))
def test_plain_containers_and_arrays_pass_in_every_protocol(tmp_path, protocol):
    data = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "names": ["a", "b"], "t": (1, 2.5, None),
            "nested": OrderedDict(x={"y": np.int64(3)}), "s": {1, 2}, "f": frozenset({3})}
    path = write(str(tmp_path / "ok.pdparams"), pickle.dumps(data, protocol=protocol))
    check_pickle_file(path)  # no error


@pytest.mark.parametrize("protocol", range(0, 6))
def test_a_reduce_payload_is_refused_in_every_protocol(tmp_path, protocol):
    path = write(str(tmp_path / "evil.pdparams"), evil_state(tmp_path / "marker", protocol))
    with pytest.raises(UserError) as info:
        check_pickle_file(path)
    assert str(info.value).startswith(f"{path}: refused to load: its pickle names the global io.open")
    assert not (tmp_path / "marker").exists()


def stream(*ops):
    return b"\x80\x04" + b"".join(ops) + b"."


def text(s):  # SHORT_BINUNICODE
    return b"\x8c" + bytes([len(s)]) + s.encode()


MEMOIZE, STACK_GLOBAL, POP, TUPLE2, REDUCE, EMPTY_TUPLE = b"\x94", b"\x93", b"0", b"\x86", b"R", b")"


@pytest.mark.parametrize("data, named", [
    # GLOBAL (protocols 0-3) and INST (protocol 0) name module and function in their argument
    (b"cposix\nsystem\n(S'true'\ntR.", "posix.system"),
    (b"(S'true'\nios\nsystem\n.", "os.system"),
    # STACK_GLOBAL from literal strings, and from memo copies of them (BINGET of what MEMOIZE stored)
    (stream(text("builtins"), MEMOIZE, text("eval"), MEMOIZE, STACK_GLOBAL), "builtins.eval"),
    (stream(text("builtins"), MEMOIZE, text("tuple"), MEMOIZE, STACK_GLOBAL, POP, b"h\x00", text("exec"),
            STACK_GLOBAL), "builtins.exec"),
    (stream(text("numpy"), MEMOIZE, text("ndarray"), MEMOIZE, STACK_GLOBAL, POP, text("os"), MEMOIZE, POP,
            b"h\x02", b"h\x01", STACK_GLOBAL), "os.ndarray"),
])
def test_globals_are_read_without_running_anything(data, named):
    assert named in pickle_globals(data)


@pytest.mark.parametrize("data, problem", [
    # _codecs.encode('bf', 'rot13') == 'os': a module name computed by an allowed function must not pass
    (stream(text("_codecs"), text("encode"), STACK_GLOBAL, text("bf"), text("rot13"), TUPLE2, REDUCE,
            text("system"), STACK_GLOBAL), "not literal strings"),
    (stream(text("system"), STACK_GLOBAL), "not literal strings"),  # only one name on the stack
    (b"\x80\x02\x82\x01)R.", "extension-registry code (EXT1)"),
    (b"\x80\x02\x8a\x01\x01\x85Q.", "persistent id (BINPERSID)"),
])
def test_calls_that_name_no_global_are_refused(tmp_path, data, problem):
    path = write(str(tmp_path / "x.pdparams"), data)
    with pytest.raises(UserError) as info:
        check_pickle_file(path)
    assert "refused to load: its pickle holds" in str(info.value) and problem in str(info.value)


def test_a_truncated_pickle_is_damaged_not_refused(tmp_path):
    data = pickle.dumps({"w": np.zeros(100, np.float32)}, protocol=4)
    path = write(str(tmp_path / "t.pdparams"), data[:len(data) // 2])
    with pytest.raises(UserError, match="damaged or truncated"):
        check_pickle_file(path)


def test_real_paddle_and_gensim_files_pass(tmp_path):
    import paddle
    from gensim.models import KeyedVectors
    layer = paddle.nn.Linear(4, 3)
    optimizer = paddle.optimizer.AdamW(learning_rate=paddle.optimizer.lr.LinearWarmup(0.1, 10, 0.0, 0.1),
                                       parameters=layer.parameters())
    layer(paddle.ones([2, 4])).sum().backward()
    optimizer.step()
    for protocol in (2, 3, 4):
        paddle.save(layer.state_dict(), str(tmp_path / f"w{protocol}.pdparams"), protocol=protocol)
        check_pickle_file(str(tmp_path / f"w{protocol}.pdparams"))
    paddle.save(optimizer.state_dict(), str(tmp_path / "o.pdopt"))
    paddle.save(paddle.ones([2]), str(tmp_path / "t.pdparams"))  # a raw tensor pickles as a tuple
    check_pickle_file(str(tmp_path / "o.pdopt"))
    check_pickle_file(str(tmp_path / "t.pdparams"))
    kv = KeyedVectors(vector_size=3)
    kv.add_vectors(["good", "bad"], np.ones((2, 3), np.float32))
    kv.save(str(tmp_path / "v.kv"))
    check_pickle_file(str(tmp_path / "v.kv"), GENSIM)
    with pytest.raises(UserError, match="gensim.models.keyedvectors.KeyedVectors"):
        check_pickle_file(str(tmp_path / "v.kv"))  # not a weights file's global


def torch_zip(path, data_pkl):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/version", "3\n")
    return path


def torch_state_pickle():
    """data.pkl of torch.save({'w': a float tensor}) in torch's own opcodes (hand-written: torch is not
    installed): OrderedDict, _rebuild_tensor_v2 over a FloatStorage persistent id."""
    return (b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02ctorch._utils\n"
            b"_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000"
            b"q\x06X\x03\x00\x00\x00cpuq\x07K\x02tq\x08QK\x00K\x02\x85K\x01\x85\x89h\x00)Rq\ttq\nRq\x0bs.")


def evil_torch(marker):
    return pickle.dumps(OrderedDict(w=Payload(marker)), protocol=2)


def test_a_torch_zip_passes_with_its_own_globals_and_a_payload_does_not(tmp_path):
    assert "torch._utils._rebuild_tensor_v2" in pickle_globals(torch_state_pickle(), persistent_ids=True)
    check_torch_zip(torch_zip(str(tmp_path / "ok.bin"), torch_state_pickle()))
    evil = torch_zip(str(tmp_path / "evil.bin"), evil_torch(tmp_path / "marker"))
    with pytest.raises(UserError, match=r"evil.bin:archive/data.pkl: refused to load: .* io.open"):
        check_torch_zip(evil)
    with pytest.raises(UserError, match="not a zip archive"):
        check_torch_zip(write(str(tmp_path / "plain.bin"), evil_state(tmp_path / "marker")))


# ---- every place a pickle comes in, through the scripts: exit 2, one line naming file and global, no payload run

def refused(capsys, main, argv, named):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().replace("\r", "\n").split("\n")
    assert info.value.code == 2 and not any("Traceback" in e for e in err), err
    assert err[-1].startswith(f"error: {named}: refused to load: its pickle names the global io.open"), err


def poisoned(src, dst, name, marker):
    """A copy of folder src with file `name` replaced by a pickle carrying the payload."""
    shutil.copytree(src, dst)
    write(os.path.join(dst, name), evil_state(marker))
    return dst


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_glue, tiny_bert):
    out = str(tmp_path_factory.mktemp("run") / "run")
    run_glue.main(["--task_name", "SST-2", "--glue_dir", demo_glue, "--model_name_or_path", tiny_bert,
                   "--output_dir", out, "--max_steps", "2", "--save_steps", "2"])
    return out


def glue(demo_glue, model, out, *extra):
    return ["--task_name", "SST-2", "--glue_dir", demo_glue, "--model_name_or_path", model, "--output_dir", out,
            "--max_steps", 2, "--save_steps", 2, *extra]


def distill(demo_glue, teacher, out, *extra):
    return ["--task_name", "SST-2", "--glue_dir", demo_glue, "--teacher_path", teacher, "--output_dir", out,
            "--max_steps", 2, "--max_seq_length", 32, *extra]


def test_a_poisoned_teacher_folder_for_fine_tuning(tmp_path, capsys, demo_glue, tiny_teacher):
    folder = poisoned(tiny_teacher, tmp_path / "t", "model_state.pdparams", tmp_path / "marker")
    refused(capsys, run_glue.main, glue(demo_glue, folder, tmp_path / "o"), folder / "model_state.pdparams")
    assert not (tmp_path / "marker").exists() and not (tmp_path / "o").exists()


def test_a_poisoned_teacher_for_distillation(tmp_path, capsys, demo_glue, tiny_teacher):
    folder = poisoned(tiny_teacher, tmp_path / "t", "model_state.pdparams", tmp_path / "marker")
    refused(capsys, task_distill.main, distill(demo_glue, folder, tmp_path / "o", "--student_model_name_or_path",
                                               "2l-16d", "--student_init", "random"), folder / "model_state.pdparams")
    assert not (tmp_path / "marker").exists() and not (tmp_path / "o").exists()


def test_a_poisoned_student_folder(tmp_path, capsys, demo_glue, tiny_teacher):
    folder = poisoned(tiny_teacher, tmp_path / "s", "model_state.pdparams", tmp_path / "marker")
    refused(capsys, task_distill.main, distill(demo_glue, tiny_teacher, tmp_path / "o",
                                               "--student_model_name_or_path", folder), folder / "model_state.pdparams")
    assert not (tmp_path / "marker").exists() and not (tmp_path / "o").exists()


def test_word_students_save_safetensors_and_older_pickled_folders_load_through_the_check(tmp_path):
    import paddle
    from utils.adapters import load_adapter, save_adapter
    from utils.adapters.bilstm import BiLSTMAdapter
    from utils.adapters.words import WordEncoder
    adapter = BiLSTMAdapter.build(WordEncoder.build(["a good film", "bad"], False), 2,
                                  {"emb_dim": 4, "hidden_size": 3, "mlp_size": 5})
    save_adapter(adapter, str(tmp_path / "s"))
    saved = os.listdir(tmp_path / "s")
    assert "model.safetensors" in saved and "model_state.pdparams" not in saved
    # a folder written before the switch: the same weights pickled
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "s", old)
    os.remove(old / "model.safetensors")
    paddle.save(adapter.model.state_dict(), str(old / "model_state.pdparams"))
    for folder in (tmp_path / "s", old):
        again = load_adapter(str(folder))
        assert all(np.array_equal(v.numpy(), adapter.model.state_dict()[k].numpy())
                   for k, v in again.model.state_dict().items())
    write(str(old / "model_state.pdparams"), evil_state(tmp_path / "marker"))
    with pytest.raises(UserError, match="model_state.pdparams: refused to load: its pickle names the global io.open"):
        load_adapter(str(old))
    assert not (tmp_path / "marker").exists()


def test_bert_folders_the_suite_writes_are_safetensors_and_never_converted(tmp_path, tiny_teacher):
    from utils.adapters import load_adapter, save_adapter
    from utils.models import model_kind
    teacher = load_adapter(tiny_teacher)  # an older pickled folder (conftest saves with save_pretrained's default)
    save_adapter(teacher, str(tmp_path / "m"))
    files = os.listdir(tmp_path / "m")
    assert "model.safetensors" in files and not [n for n in files if n.endswith((".pdparams", ".bin"))]
    assert model_kind(str(tmp_path / "m")) == "paddle"  # its header says "np": not a Hugging Face folder
    again = load_adapter(str(tmp_path / "m"))
    theirs = teacher.model.state_dict()
    assert all(np.array_equal(v.numpy(), theirs[k].numpy()) for k, v in again.model.state_dict().items())


@pytest.mark.parametrize("name", ["trainable.pdparams", "optimizer.pdopt"])
def test_a_poisoned_checkpoint_under_resume(tmp_path, capsys, demo_glue, tiny_bert, run, name):
    out = poisoned(run, tmp_path / "r", os.path.join("checkpoint", name), tmp_path / "marker")
    before = {n: (out / n).read_bytes() for n in ("args.json", "all_results.json")}
    refused(capsys, run_glue.main, glue(demo_glue, tiny_bert, out, "--resume"), out / "checkpoint" / name)
    assert not (tmp_path / "marker").exists()
    assert {n: (out / n).read_bytes() for n in before} == before  # the earlier run is untouched


def test_poisoned_word_vectors(tmp_path, capsys, demo_glue, tiny_teacher):
    vectors = write(str(tmp_path / "v.kv"), evil_state(tmp_path / "marker"))
    refused(capsys, task_distill.main, distill(demo_glue, tiny_teacher, tmp_path / "o", "--student_model_name_or_path",
                                               "bilstm", "--glove_embs", vectors), vectors)
    assert not (tmp_path / "marker").exists() and not (tmp_path / "o").exists()


def test_a_poisoned_pytorch_folder(tmp_path, capsys, demo_glue, tiny_bert):
    hf = tmp_path / "hf"
    os.makedirs(hf)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(tiny_bert, name), hf)
    with open(os.path.join(tiny_bert, "config.json")) as f:
        write(str(hf / "config.json"), json.dumps(dict(json.load(f), architectures=["BertModel"])))
    torch_zip(str(hf / "pytorch_model.bin"), evil_torch(tmp_path / "marker"))
    refused(capsys, run_glue.main, glue(demo_glue, hf, tmp_path / "o"), f"{hf / 'pytorch_model.bin'}:archive/data.pkl")
    assert not (tmp_path / "marker").exists() and not (tmp_path / "o").exists()


def test_a_pickle_that_is_also_a_zip_is_read_as_the_loader_reads_it(tmp_path):
    # paddle.load unpickles from the first byte whatever the end of the file looks like
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", torch_state_pickle())
    path = write(str(tmp_path / "polyglot.pdparams"), evil_state(tmp_path / "marker") + buffer.getvalue())
    assert zipfile.is_zipfile(path)
    with pytest.raises(UserError, match="io.open"):
        check_pickle_file(path)
