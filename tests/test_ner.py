"""Token classification end to end on tiny models: the teacher (run_ner.py), both distillation stages as phases
of one run, the gold-label twin, several teachers, export and prediction, the report, and bad input."""
import json
import os

import numpy as np
import pytest
from conftest import write

import export_model
import predict
import report
import run_ner
import task_distill

QUICK = ["--max_seq_length", 32, "--batch_size", 16, "--logging_steps", 25, "--save_steps", 50, "--learning_rate",
         3e-3]


def argv(*args):
    return [str(a) for a in args]


@pytest.fixture(scope="module")
def ner(tmp_path_factory, tiny_bert):
    """The synthetic NER set (subjects, positive and negative adjectives), a fine-tuned teacher and a distilled
    student, as task_distill.py's two TinyBERT stages in one run."""
    from utils.demo import write_conll
    root = tmp_path_factory.mktemp("ner")
    data = str(root / "data")
    write_conll(data, n_train=400, n_dev=80)
    teacher = run_ner.main(argv("--data_dir", data, "--model_name_or_path", tiny_bert, "--output_dir",
                                root / "teacher", "--max_steps", 150, *QUICK))
    config = write(str(root / "phases.json"), json.dumps({"phases": "tinybert",
                                                           "intermediate_matches": [{"preset": "tinybert"}]}))
    common = ["--task_name", "conll", "--data_dir", data, "--teacher_path", root / "teacher" / "best_model",
              "--student_model_name_or_path", "1l-32d", "--student_init", "random", "--max_steps", 200, *QUICK]
    student = task_distill.main(argv(*common, "--distill_config", config, "--output_dir", root / "pred"))
    return {"root": root, "data": data, "teacher": teacher, "student": student, "common": common, "config": config}


def test_teacher_learns_the_synthetic_entities(ner):
    results = ner["teacher"]
    assert {"eval_f1", "eval_precision", "eval_recall"} <= set(results) and results["main_metric"] == "eval_f1"
    assert results["eval_f1"] >= 0.9 and results["train_examples"] == 400
    config = json.load(open(ner["root"] / "teacher" / "best_model" / "config.json"))
    assert config["distill_head"] == "token" and config["id2label"]["0"] == "O" and len(config["id2label"]) == 5


def test_both_stages_run_as_phases_and_the_student_keeps_the_teachers_f1(ner):
    r = ner["student"]
    assert [p["phase"] for p in r["phases"]] == ["intermediate", "prediction"]
    assert r["phases"][0]["eval_inter_loss"] > 0
    assert r["eval_f1"] >= 0.95 * ner["teacher"]["eval_f1"]
    # the saved best model scores what the run reported
    from utils.adapters import load_adapter
    from utils.tasks import load_task
    from utils.training import evaluate
    spec, _, dev = load_task("conll", data_dir=ner["data"], options={"tag_column": -1}, with_train=False)
    model = load_adapter(str(ner["root"] / "pred" / "best_model"))
    assert model.head == "token"
    again = evaluate(spec, model, {"dev": model.encoder.encode(dev["dev"], 32)}, 64)
    assert again["eval_f1"] == pytest.approx(r["eval_f1"], abs=1e-9)


def test_gold_twin_and_two_identical_teachers(ner):
    root, common = ner["root"], ner["common"]
    gold = task_distill.main(argv(*common, "--pred_weight", 0, "--hard_label_weight", 1, "--output_dir",
                                  root / "gold"))
    assert gold["eval_f1"] >= 0.9  # measured 0.99: the rule's tags are learnable from gold labels alone
    single = task_distill.main(argv(*common, "--output_dir", root / "one"))
    i = common.index("--teacher_path")
    twice = common[:i + 2] + [common[i + 1]] + common[i + 2:]  # the same teacher twice: the mean is the same
    double = task_distill.main(argv(*twice, "--output_dir", root / "two"))
    assert double["eval_f1"] == single["eval_f1"]
    from utils.files import load_model_state
    a, b = (load_model_state(str(root / run / "best_model")) for run in ("one", "two"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_export_and_predict_tag_every_word_like_the_trained_model(ner, tmp_path):
    export = str(tmp_path / "export")
    export_model.main(argv("--model_dir", ner["root"] / "pred" / "best_model", "--output_dir", export, "--onnx",
                           "--max_seq_length", 32))
    for backend in ("paddle", "onnx"):
        out = str(tmp_path / f"{backend}.txt")
        results = predict.main(argv("--model_dir", export, "--task_name", "conll", "--data_dir", ner["data"],
                                    "--backend", backend, "--output_file", out))
        assert results["dev_f1"] == pytest.approx(ner["student"]["eval_f1"], abs=1e-9)
        blocks = open(out).read().strip("\n").split("\n\n")
        assert len(blocks) == 80 and all(len(line.split("\t")) == 3 for line in blocks[0].split("\n"))
    texts = write(str(tmp_path / "s.txt"), "the movie was great .\n\nthe cast was not dull\n")
    predict.main(argv("--model_dir", export, "--input", texts, "--output_file", tmp_path / "s.out"))
    blocks = open(tmp_path / "s.out").read().strip("\n").split("\n\n")
    assert [[line.split("\t")[0] for line in b.split("\n")] for b in blocks] == [
        ["the", "movie", "was", "great", "."], ["the", "cast", "was", "not", "dull"]]
    tags = {line.split("\t")[0]: line.split("\t")[1] for b in blocks for line in b.split("\n")}
    assert tags["great"] == "B-POS" and tags["dull"] == "B-NEG" and tags["movie"] == "I-SUBJ"


def test_transfer_sentences_teach_a_ner_student_through_the_label_store(ner, tmp_path, capsys):
    """Unlabeled sentences for a token task: labelled per token by the teacher into the store (flat logits with
    offsets), dev sentences dropped, the gold loss on the labelled sentences only; a second run reads the store,
    and the stored per-token logits are the teacher's own."""
    from utils.demo import sentence
    import random
    rng = random.Random(11)
    with open(os.path.join(ner["data"], "dev.txt"), encoding="utf-8") as f:
        first_dev = " ".join(line.split()[0] for line in f.read().split("\n\n")[1].splitlines())
    lines = [sentence(rng)[0] for _ in range(60)] + [first_dev]
    transfer = write(str(tmp_path / "sentences.txt"), "\n".join(lines) + "\n")
    i = ner["common"].index("--max_steps")
    common = ner["common"][:i] + ["--max_steps", 40] + ner["common"][i + 2:] + [
        "--transfer_file", transfer, "--cache_dir", tmp_path / "store", "--hard_label_weight", 1]
    first = task_distill.main(argv(*common, "--output_dir", tmp_path / "a"))
    out = capsys.readouterr().out
    assert "61 rows read; 1 equal to a dev row" in out and "teacher logits: wrote" in out
    assert first["transfer_examples"] >= 50 and first["eval_f1"] > 0
    task_distill.main(argv(*common, "--output_dir", tmp_path / "b"))
    assert "teacher logits: reusing" in capsys.readouterr().out
    # the store's logits of a transfer sentence are the teacher's per-token logits
    import glob
    from conftest import model_logits
    from utils.labels import LabelStore, row_keys
    from utils.transfer import read_sentences
    sentences = read_sentences(transfer)[:3]
    (folder,) = glob.glob(str(tmp_path / "store" / "teacher-*"))
    stored = LabelStore(folder).gather(row_keys(sentences))
    direct = model_logits(ner["root"] / "teacher" / "best_model", sentences, 32)
    for a, b in zip(stored, direct):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_report_reads_a_ner_pipeline(ner, tmp_path, capsys):
    import shutil
    out = tmp_path / "pipeline"
    shutil.copytree(ner["root"] / "teacher", out / "teacher")
    shutil.copytree(ner["root"] / "pred", out / "pred")
    report.main(argv("--out", out, "--no-latency"))
    text = open(out / "report.md").read()
    assert "eval_f1" in text or "f1" in text
    assert f"{ner['student']['eval_f1']:.4f}" in text


@pytest.mark.parametrize("case", ["unknown_dev_tag", "missing_tag", "word_student", "sequence_teacher", "aug",
                                  "glue_task_in_run_ner"])
def test_bad_token_input_is_refused_cleanly(case, ner, tmp_path, capsys, tiny_teacher):
    data = str(tmp_path / "data")
    write(f"{data}/train.txt", "the B-SUBJ\nmovie I-SUBJ\nwas O\ngreat B-POS\n\nit O\nwas O\ndull B-NEG\n")
    write(f"{data}/dev.txt", "the B-SUBJ\ncast I-SUBJ\n\nwas O\nfine B-OK\n")
    out = str(tmp_path / "out")
    teacher = str(ner["root"] / "teacher" / "best_model")
    distill = ["--task_name", "conll", "--data_dir", data, "--teacher_path", teacher, "--output_dir", out,
               "--max_steps", 2, "--student_model_name_or_path", "1l-32d", "--student_init", "random"]
    script, args, expected = {
        "unknown_dev_tag": (run_ner, ["--data_dir", data, "--model_name_or_path", teacher, "--output_dir", out],
                            "dev.txt:5: tag 'B-OK' is not among the training tags"),
        "missing_tag": (run_ner, ["--data_dir", write(f"{tmp_path}/bad/train.txt", "the B-SUBJ\nmovie\n") and
                                  f"{tmp_path}/bad", "--model_name_or_path", teacher, "--output_dir", out],
                        "train.txt:2: expected a token and its tag"),
        "word_student": (task_distill, distill[:-4] + ["--student_model_name_or_path", "bilstm"],
                         "token classification needs a WordPiece student"),
        "sequence_teacher": (task_distill, [a if a != teacher else tiny_teacher for a in distill],
                             "the teacher has a sequence head; this task needs a token head"),
        "aug": (task_distill, distill + ["--use_aug"], "--use_aug works for sequence classification; a token task"),
        "glue_task_in_run_ner": (run_ner, ["--task_name", "SST-2", "--data_dir", data, "--model_name_or_path",
                                           teacher, "--output_dir", out], "use run_glue.py"),
    }[case]
    if case == "unknown_dev_tag":
        pass
    else:
        write(f"{data}/dev.txt", "the B-SUBJ\ncast I-SUBJ\n")
    with pytest.raises(SystemExit) as info:
        script.main(argv(*args))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(out)
