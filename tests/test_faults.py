"""Bad input and faults, table-driven over the entry points: every case ends in exit status 2 and one `error:` line
naming the file or flag, with no traceback and no output left behind. Then a full disk, injected as a byte budget
on Python-level writes (tests/conftest.py small_disk), against every script: one line naming the file, no
temporary names left, earlier outputs intact, and where the script can resume, resuming completes the run."""
import errno
import json
import os
import shutil

import pytest
from conftest import leftovers, small_disk, write

import data_augmentation
import export_model
import multitask_distill
import predict
import report
import run_glue
import task_distill

MAINS = {"run_glue": run_glue.main, "task_distill": task_distill.main, "multitask_distill": multitask_distill.main,
         "data_augmentation": data_augmentation.main, "export_model": export_model.main, "predict": predict.main,
         "report": report.main}


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_glue, tiny_bert, tiny_teacher):
    """Shared, read-only inputs: the demo task, a teacher, a fine-tuning run with its checkpoint, an export."""
    root = tmp_path_factory.mktemp("world")
    run = str(root / "run")
    run_glue.main(["--task_name", "SST-2", "--glue_dir", demo_glue, "--model_name_or_path", tiny_bert,
                   "--output_dir", run, "--max_steps", "2", "--save_steps", "2"])
    export = str(root / "export")
    export_model.main(["--model_dir", tiny_teacher, "--output_dir", export, "--onnx", "--max_seq_length", "32"])
    texts = write(str(root / "texts.txt"), "a good film\nbad\n")
    return dict(glue=demo_glue, bert=tiny_bert, teacher=tiny_teacher, run=run, export=export, texts=texts)


def broken_copy(src, dst, name, damage):
    """A copy of folder src at dst with file `name` truncated ("truncate"), replaced by text, or removed (None)."""
    shutil.copytree(src, dst)
    path = os.path.join(dst, name)
    if damage is None:
        os.remove(path)
    elif damage == "truncate":
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 3])
    else:
        write(path, damage)
    return dst


def distill(w, out, *extra):
    return ["--task_name", "SST-2", "--glue_dir", w["glue"], "--teacher_path", w["teacher"], "--output_dir", out,
            "--student_model_name_or_path", "2l-16d", "--student_init", "random", "--max_steps", 2,
            "--max_seq_length", 32, *extra]


def glue_run(w, out, *extra):
    return ["--task_name", "SST-2", "--glue_dir", w["glue"], "--model_name_or_path", w["bert"], "--output_dir", out,
            "--max_steps", 2, "--save_steps", 2, *extra]


def augment(w, output, *extra):
    return ["--task_name", "SST-2", "--glue_dir", w["glue"], "--output", output, "--pretrained_bert_model", "none",
            "--method", "tang", "--p_pos", 0, "--N", 3, *extra]


def deny_reading(monkeypatch, path):
    """Reading `path` fails as it does for a file without read permission (tests may run as root)."""
    import builtins
    real = builtins.open

    def guarded(file, mode="r", *args, **kwargs):
        if str(file) == str(path) and "r" in mode:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real(file, mode, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", guarded)


def deny_writing(monkeypatch, folder):
    """New files in `folder` fail as they do on a read-only file system."""
    import tempfile
    real = tempfile.mkstemp
    os.makedirs(folder, exist_ok=True)

    def guarded(*args, dir=None, **kwargs):
        if dir is not None and os.path.abspath(dir) == os.path.abspath(folder):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))
        return real(*args, dir=dir, **kwargs)
    monkeypatch.setattr(tempfile, "mkstemp", guarded)


# (id, builder(w, tmp, monkeypatch) -> (script, argv, message, path that must not exist afterwards))
CASES = [
    # non-finite or out-of-range numbers
    ("distill-T-nan", lambda w, t, m: ("task_distill", distill(w, t / "o", "--T", "nan"),
                                       "--T must be a finite number, got nan", t / "o")),
    ("multitask-lr-inf", lambda w, t, m: ("multitask_distill", [
        "--task_name", "SST-2", "--glue_dir", w["glue"], "--teacher_path", w["teacher"], "--output_dir", t / "o",
        "--student_model_name_or_path", "2l-16d", "--learning_rate", "inf"],
        "--learning_rate must be a finite number", t / "o")),
    ("predict-input-mixes-texts-and-pairs", lambda w, t, m: ("predict", [
        "--model_dir", w["export"], "--input", write(str(t / "mixed.txt"), "a good film\n\nfine\nbad\tworse\n"),
        "--output_file", t / "p.tsv"], "mixed.txt:4: a pair (two tab-separated texts), but line 1 is a single text; "
        "expected the same number of fields on every line", t / "p.tsv")),
    ("distill-seed-negative", lambda w, t, m: ("task_distill", distill(w, t / "o", "--seed=-1"),
                                               "--seed must be >= 0, got -1", t / "o")),
    ("run_glue-weight-decay-negative", lambda w, t, m: ("run_glue", glue_run(w, t / "o", "--weight_decay=-0.1"),
                                                        "--weight_decay must be >= 0, got -0.1", t / "o")),
    ("augment-max-ngram-0", lambda w, t, m: ("data_augmentation", augment(w, t / "a.tsv", "--max_ngram", 0),
                                             "--max_ngram must be >= 1", t / "a.tsv")),
    ("predict-batch-0", lambda w, t, m: ("predict", ["--model_dir", w["export"], "--input", w["texts"],
                                                     "--batch_size", 0], "--batch_size must be positive", None)),
    ("export-opset-3", lambda w, t, m: ("export_model", ["--model_dir", w["teacher"], "--output_dir", t / "e",
                                                         "--opset", 3], "--opset must be between 7 and 21", t / "e")),
    # config values of the wrong type
    ("config-schedule-type", lambda w, t, m: ("task_distill", distill(
        w, t / "o", "--distill_config", write(str(t / "c.json"), '{"kd_weight_schedule": 5}')),
        "c.json: kd_weight_schedule must be a name or an object", t / "o")),
    # files that cannot be read, folders where files are expected, outputs that cannot be written
    ("config-is-a-folder", lambda w, t, m: ("task_distill", distill(w, t / "o", "--distill_config", t),
                                            f"{t}: is a directory; expected a distillation config", t / "o")),
    ("train-unreadable", lambda w, t, m: (
        deny_reading(m, os.path.join(w["glue"], "SST-2", "train.tsv")),
        ("run_glue", glue_run(w, t / "o"), "train.tsv: permission denied", t / "o"))[1]),
    ("config-unreadable", lambda w, t, m: (
        deny_reading(m, write(str(t / "c.json"), "{}")),
        ("task_distill", distill(w, t / "o", "--distill_config", t / "c.json"), "c.json: cannot read (permission "
         "denied)", t / "o"))[1]),
    ("augment-input-unreadable", lambda w, t, m: (
        deny_reading(m, os.path.join(w["glue"], "SST-2", "train.tsv")),
        ("data_augmentation", augment(w, t / "a.tsv"), "train.tsv: permission denied", t / "a.tsv"))[1]),
    ("predict-input-unreadable", lambda w, t, m: (
        deny_reading(m, w["texts"]),
        ("predict", ["--model_dir", w["export"], "--input", w["texts"], "--output_file", t / "p.tsv"],
         "texts.txt: permission denied", t / "p.tsv"))[1]),
    ("predict-output-folder-read-only", lambda w, t, m: (
        deny_writing(m, t / "ro"),
        ("predict", ["--model_dir", w["export"], "--input", w["texts"], "--output_file", t / "ro" / "p.tsv"],
         "ro: read-only file system", t / "ro" / "p.tsv"))[1]),
    ("predict-input-is-a-folder", lambda w, t, m: ("predict", ["--model_dir", w["export"], "--input", t],
                                                   f"{t}: is a directory; expected a text file", None)),
    ("predict-output-is-a-folder", lambda w, t, m: (
        "predict", ["--model_dir", w["export"], "--input", w["texts"], "--output_file", t],
        f"{t}: is a directory; expected an output file path", None)),
    ("augment-output-is-a-folder", lambda w, t, m: ("data_augmentation", augment(w, t),
                                                    f"{t}: is a directory; expected the output file path", None)),
    ("export-output-is-a-file", lambda w, t, m: ("export_model", [
        "--model_dir", w["teacher"], "--output_dir", write(str(t / "f"), "x")], "f: is a file; expected an output "
        "directory", None)),
    # broken model and checkpoint files
    ("export-weights-truncated", lambda w, t, m: ("predict", [
        "--model_dir", broken_copy(w["export"], t / "e", "inference.pdiparams", "truncate"), "--input", w["texts"]],
        "e: cannot load the exported model", None)),
    ("onnx-truncated", lambda w, t, m: ("predict", [
        "--model_dir", broken_copy(w["export"], t / "e", "model.onnx", "truncate"), "--input", w["texts"],
        "--backend", "onnx"], "e: cannot load the exported model", None)),
    ("export-json-missing", lambda w, t, m: ("predict", [
        "--model_dir", broken_copy(w["export"], t / "e", "export.json", None), "--input", w["texts"]],
        "export.json: no such file; expected the export's description", None)),
    ("teacher-config-invalid", lambda w, t, m: ("task_distill", distill(
        w, t / "o", "--teacher_path", broken_copy(w["teacher"], t / "t", "config.json", "{oops")),
        "t/config.json:1: not valid JSON", t / "o")),
    ("teacher-weights-truncated", lambda w, t, m: ("task_distill", distill(
        w, t / "o", "--teacher_path", broken_copy(w["teacher"], t / "t", "model_state.pdparams", "truncate")),
        "t/model_state.pdparams: damaged or truncated (it does not parse)", t / "o")),
    ("export-config-invalid", lambda w, t, m: ("export_model", [
        "--model_dir", broken_copy(w["teacher"], t / "t", "config.json", "[1, 2]"), "--output_dir", t / "e"],
        "config.json: holds a JSON list; expected the model's config", t / "e")),
    ("resume-state-invalid", lambda w, t, m: ("run_glue", glue_run(
        w, broken_copy(w["run"], t / "r", "checkpoint/trainer_state.json", "{"), "--resume"),
        "trainer_state.json:1: not valid JSON", None)),
    ("resume-weights-truncated", lambda w, t, m: ("run_glue", glue_run(
        w, broken_copy(w["run"], t / "r", "checkpoint/trainable.pdparams", "truncate"), "--resume"),
        "trainable.pdparams: damaged or truncated", None)),
    ("resume-optimizer-truncated", lambda w, t, m: ("run_glue", glue_run(
        w, broken_copy(w["run"], t / "r", "checkpoint/optimizer.pdopt", "truncate"), "--resume"),
        "optimizer.pdopt: damaged or truncated (it does not parse); expected the checkpoint's optimizer state; run "
        "without --resume to start fresh", None)),
    ("augment-progress-invalid", lambda w, t, m: (
        write(str(t / "a.tsv.tmp"), "sentence\tlabel\n"), write(str(t / "a.tsv.progress.json"), '{"examples": 1}'),
        ("data_augmentation", augment(w, t / "a.tsv", "--resume"), "a.tsv.progress.json: expected \"examples\"",
         t / "a.tsv"))[2]),
    # report on what is not there
    ("report-nothing", lambda w, t, m: ("report", ["--out", t / "missing"], "missing: no such folder", None)),
    ("report-results-invalid", lambda w, t, m: (
        write(str(t / "teacher" / "all_results.json"), "{"),
        ("report", ["--out", t, "--no-latency"], "teacher/all_results.json:1: not valid JSON", t / "report.md"))[1]),
]


@pytest.mark.parametrize("case", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_cleanly(case, world, tmp_path, capsys, monkeypatch):
    script, argv, message, absent = case(world, tmp_path, monkeypatch)
    before, temporary = snapshot(world), leftovers(tmp_path)
    with pytest.raises(SystemExit) as info:
        MAINS[script]([str(a) for a in argv])
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().replace("\r", "\n").split("\n")
    line = err[-1]  # a progress bar may stand before the error line
    assert info.value.code == 2 and line.startswith("error: ") and message in line, err
    assert not any("Traceback" in e for e in err), err
    assert absent is None or not os.path.exists(absent)
    assert leftovers(tmp_path) == temporary and snapshot(world) == before  # nothing half-written, inputs untouched


def snapshot(w):
    return {p: sorted(os.listdir(p)) for p in (w["run"], os.path.join(w["run"], "checkpoint"), w["export"])}


def test_a_damaged_resume_leaves_the_earlier_run_untouched(world, tmp_path, capsys):
    run = broken_copy(world["run"], tmp_path / "r", "checkpoint/trainable.pdparams", "truncate")
    files = {n: open(os.path.join(run, n), "rb").read() for n in ("args.json", "all_results.json")}
    with pytest.raises(SystemExit):
        run_glue.main([str(a) for a in glue_run(world, run, "--resume")])
    assert {n: open(os.path.join(run, n), "rb").read() for n in files} == files


def test_report_shows_what_it_has_and_names_what_is_missing(world, tmp_path, capsys):
    out = tmp_path / "pipeline"
    shutil.copytree(world["run"], out / "teacher")
    os.remove(out / "teacher" / "args.json")
    write(str(out / "pred" / "all_results.json"), "[]")
    assert report.main(["--out", str(out), "--no-latency"]) == str(out / "report.md")
    text = (out / "report.md").read_text()
    with open(out / "teacher" / "all_results.json") as f:
        teacher = json.load(f)
    assert f"| teacher (fine-tuned) | {teacher['eval_accuracy']:.4f} |" in text
    assert "teacher/args.json: no such file; expected the stage's arguments (its command not shown)" in text
    assert "pred/all_results.json: holds a JSON list; expected the stage's results" in text
    assert "student on gold labels only: not run (no baseline/ folder)" in text
    assert "not in this report: student after stage 2" in capsys.readouterr().out


# ---- a full disk: (id, capacity in bytes, builder(w, out) -> (script, argv, the start of the file name in the
# error)), with out on a disk that fills after `capacity` bytes
DISK_FULL = [
    ("run_glue", 600, lambda w, o: ("run_glue", glue_run(w, o), o)),
    ("task_distill", 600, lambda w, o: ("task_distill", distill(w, o, "--save_steps", 2), o)),
    ("teacher-logit-cache", 100, lambda w, o: ("task_distill", distill(
        w, o + "-run", "--cache_teacher_logits", "--cache_dir", o), o)),
    ("data_augmentation", 600, lambda w, o: ("data_augmentation", augment(w, os.path.join(o, "aug.tsv")),
                                             os.path.join(o, "aug.tsv"))),
    ("export_model", 100, lambda w, o: ("export_model", ["--model_dir", w["teacher"], "--output_dir", o], o)),
    ("predict", 600, lambda w, o: ("predict", [
        "--model_dir", w["export"], "--input", write(o + ".txt", "a good film\n" * 100), "--output_file",
        os.path.join(o, "p.tsv")], os.path.join(o, "p.tsv"))),
]


@pytest.mark.parametrize("capacity,case", [c[1:] for c in DISK_FULL], ids=[c[0] for c in DISK_FULL])
def test_a_full_disk_is_one_line_and_leaves_no_partial_files(capacity, case, world, tmp_path, capsys, monkeypatch):
    disk = tmp_path / "disk"
    os.makedirs(disk)
    write(str(disk / "earlier.txt"), "an earlier complete output")
    script, argv, named = case(world, str(disk / "out"))
    small_disk(monkeypatch, disk, capacity)
    with pytest.raises(SystemExit) as info:
        MAINS[script]([str(a) for a in argv])
    monkeypatch.undo()
    line = capsys.readouterr().err.strip().replace("\r", "\n").split("\n")[-1]
    assert info.value.code == 2 and line.startswith(f"error: no space left on device while writing {named}"), line
    if script != "data_augmentation":  # (whose .tmp is the resume state it names on purpose)
        assert ".tmp" not in line.split(";")[0], line  # the output the user asked for, not a temporary name
    kept = [p for p in leftovers(disk) if script == "data_augmentation" and p.endswith(("aug.tsv.tmp",))]
    assert leftovers(disk) == kept  # only augmentation keeps its .tmp (and progress.json) to resume from
    assert (disk / "earlier.txt").read_text() == "an earlier complete output"
    assert not os.path.exists(disk / "out" / "all_results.json") and not os.path.exists(disk / "out" / "p.tsv")


def test_augmentation_resumes_after_a_full_disk_to_the_same_bytes(world, tmp_path, capsys, monkeypatch):
    full = tmp_path / "full.tsv"
    data_augmentation.main([str(a) for a in augment(world, full, "--chunk_size", 8)])
    target = tmp_path / "disk" / "aug.tsv"
    small_disk(monkeypatch, tmp_path / "disk", full.stat().st_size // 2)
    with pytest.raises(SystemExit):
        data_augmentation.main([str(a) for a in augment(world, target, "--chunk_size", 8)])
    monkeypatch.undo()
    assert "--resume continues from there" in capsys.readouterr().err
    assert not target.exists() and 0 < os.path.getsize(str(target) + ".tmp") < full.stat().st_size
    data_augmentation.main([str(a) for a in augment(world, target, "--chunk_size", 8, "--resume")])
    assert target.read_bytes() == full.read_bytes()


def test_fine_tuning_resumes_after_a_full_disk_to_the_same_model(world, tmp_path, capsys, monkeypatch):
    import paddle
    from conftest import model_logits
    from utils.tasks.sequence import get_task, read_examples
    whole = str(tmp_path / "whole")
    run_glue.main([str(a) for a in glue_run(world, whole, "--max_steps", 4)])
    real_save, calls = paddle.save, []

    def full_from_the_fourth(obj, path, *args, **kwargs):  # the step-2 model and checkpoint fit, step 4's does not
        calls.append(path)
        if len(calls) >= 4:
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, path, *args, **kwargs)
    out = str(tmp_path / "out")
    monkeypatch.setattr(paddle, "save", full_from_the_fourth)
    with pytest.raises(SystemExit) as info:
        run_glue.main([str(a) for a in glue_run(world, out, "--max_steps", 4)])
    monkeypatch.undo()
    assert info.value.code == 2 and "--resume continues from it" in capsys.readouterr().err
    assert leftovers(out) == [] and not os.path.exists(os.path.join(out, "all_results.json"))
    run_glue.main([str(a) for a in glue_run(world, out, "--max_steps", 4, "--resume")])
    dev = read_examples(get_task("SST-2"), os.path.join(world["glue"], "SST-2"), "dev")
    assert (model_logits(os.path.join(out, "best_model"), dev) ==
            model_logits(os.path.join(whole, "best_model"), dev)).all()


def test_outputs_in_folders_that_do_not_exist_yet_are_created(world, tmp_path):
    target = tmp_path / "new" / "nested" / "p.tsv"
    predict.main(["--model_dir", world["export"], "--input", world["texts"], "--output_file", str(target)])
    assert target.read_text().splitlines()[0].startswith("index\ttext\tprediction")
    aug = tmp_path / "new2" / "aug.tsv"
    data_augmentation.main([str(a) for a in augment(world, aug)])
    assert aug.read_text().startswith("sentence\tlabel\n")


def test_a_failed_folder_swap_puts_the_earlier_folder_back(tmp_path, monkeypatch):
    from utils.files import write_folder
    target = tmp_path / "checkpoint"
    write_folder(str(target), lambda folder: write(os.path.join(folder, "state"), "earlier"))
    real, calls = os.rename, []

    def second_rename_fails(src, dst):  # moving the old folder aside works; moving the new one in does not
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
        return real(src, dst)
    monkeypatch.setattr(os, "rename", second_rename_fails)
    with pytest.raises(OSError):
        write_folder(str(target), lambda folder: write(os.path.join(folder, "state"), "newer"))
    monkeypatch.undo()
    assert (target / "state").read_text() == "earlier" and leftovers(tmp_path) == []
