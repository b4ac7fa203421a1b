"""One student for several tasks: prediction-layer distillation from one teacher per task into a shared encoder
with a classifier per task; each step's batch comes from task t with probability n_t^tau / sum_s n_s^tau.

    python multitask_distill.py --task_name SST-2 CoLA --glue_dir GLUE \\
        --teacher_path out/sst2/teacher/best_model out/cola/teacher/best_model \\
        --student_model_name_or_path 4l-312d --student_init random --output_dir out/multi

tau = 1 samples in proportion to size (small tasks are seen rarely), tau = 0 uniformly over tasks. Writes
OUTPUT_DIR/best_model/<TASK>/ (the shared encoder with that task's classifier: a from_pretrained folder per
task, so export_model.py and predict.py work per task), chosen by the mean of the tasks' main dev metrics;
all_results.json (eval_<task>_<metric>, eval_mean_main, steps per task), args.json, runs/.
"""
import argparse
import functools
import os
import sys

from utils.process import configure  # first: settings paddle reads when it loads
configure()
import numpy as np

from utils.cli import add_training_args, add_word_student_args, label_config, refuse_flags_beside_config, validate_args
from utils.errors import FROM_CHECKPOINT, UserError, exits_cleanly
from utils.models import STUDENT_INITS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("tasks")
    g.add_argument("--task_name", nargs="+", required=True, help="two or more GLUE tasks")
    g.add_argument("--glue_dir", help="GLUE folder (without it, GLUE is downloaded through paddlenlp)")
    g.add_argument("--teacher_path", nargs="+", required=True, help="one fine-tuned teacher per task, same order")
    g.add_argument("--tau", type=float, default=1.0, help="sampling exponent: p(task) ~ size^tau (default 1)")
    g.add_argument("--max_seq_length", type=int, default=128)
    g.add_argument("--max_train_samples", type=int, help="first N training rows of each task")
    g.add_argument("--max_eval_samples", type=int, help="first N rows of each dev split")
    g.add_argument("--bucket", action=argparse.BooleanOptionalAction, default=True)
    m = p.add_argument_group("student and losses")
    m.add_argument("--student_model_name_or_path", default="tinybert-4l-312d",
                   help="as in task_distill.py: a TinyBERT name, shape (4l-312d) or folder, or bilstm / cnn / bow "
                        "(word students need tasks of one kind: all single texts or all pairs)")
    m.add_argument("--student_init", choices=STUDENT_INITS, default="pretrained")
    m.add_argument("--output_dir", required=True)
    m.add_argument("--T", type=float, default=1.0, help="temperature (float)")
    m.add_argument("--kd_loss", choices=("soft_ce", "kl", "mse"), default="soft_ce",
                   help="loss to the teacher's logits (regression tasks always use mse)")
    m.add_argument("--hard_label_weight", type=float, default=0.0)
    m.add_argument("--distill_config", help="a JSON config of prediction-layer losses and schedules, as for "
                                            "task_distill.py (no intermediate matches); replaces --T, --kd_loss, "
                                            "--hard_label_weight")
    add_word_student_args(p)
    add_training_args(p, learning_rate=5e-5)
    args = p.parse_args(argv)
    args.data_dir = None
    validate_args(args)
    refuse_flags_beside_config(p, args)
    if len(args.task_name) < 2 or len(args.teacher_path) != len(args.task_name):
        raise UserError("--task_name needs two or more tasks and --teacher_path one teacher per task")
    if not args.tau >= 0 or not args.T > 0:
        raise UserError("--tau must be >= 0 and --T > 0")
    return args


def task_probabilities(sizes, tau):
    weights = [n ** tau for n in sizes]
    return [w / sum(weights) for w in weights]


def task_schedule(probs, total_steps, seed):
    """(task of each step, how many batches that task had before it): fixed by the seed, so any step's batch can
    be recomputed and a resumed run replays the same sequence."""
    tasks = np.random.default_rng(seed).choice(len(probs), size=total_steps, p=probs)
    seen, positions = [0] * len(probs), []
    for t in tasks:
        positions.append(seen[t])
        seen[t] += 1
    return tasks, positions


def raw_config(args):
    """The config before resolution: the loss flags, or --distill_config's file."""
    from utils.presets import load_config_file
    if args.distill_config:
        return load_config_file(args.distill_config)
    return {"temperature": args.T, "kd_loss": args.kd_loss, "hard_label_weight": args.hard_label_weight}


def load_tasks(args):
    from utils.cli import task_values
    from utils.tasks import load_task, task_type
    for name in args.task_name:  # one shared encoder with a classifier per task: the heads are sequence classifiers
        why = task_type(name).REFUSES.get("multitask")
        if why:
            raise UserError(f"{why}; distil {name} with task_distill.py")
    tasks = [load_task(**dict(task_values(args), task_name=name)) for name in args.task_name]
    if len({spec.name for spec, _, _ in tasks}) != len(tasks):
        raise UserError("each task may appear once in --task_name")
    return tasks


def build_models(args, tasks):
    """(teachers, students): one teacher per task; one student adapter per task, twins sharing every parameter but
    their classifiers."""
    from utils.adapters import WORD_ARCHS, build_student, check_lengths, load_teachers
    from utils.models import WORD_OPTIONS as OPTIONS
    from utils.intermediate import uniform_layer_map
    teachers = [load_teachers([path], label_config(spec))[0] for (spec, _, _), path in zip(tasks, args.teacher_path)]
    if len({t.encoder.signature() for t in teachers}) > 1:
        raise UserError("the teachers' vocabularies differ; all must share one tokenizer", args.teacher_path[1])
    examples = [e for _, train, _ in tasks for e in train]
    if args.student_model_name_or_path in WORD_ARCHS and len({e.text_b is None for e in examples}) > 1:
        raise UserError("a word student reads either single texts or pairs: give tasks of one kind")
    if args.student_model_name_or_path == "bow":
        raise UserError("a bow student is one linear layer: it has no encoder for the tasks to share; use bilstm, "
                        "cnn or a TinyBERT student")
    first = build_student(args.student_model_name_or_path, teachers[0], tasks[0][0].num_labels,
                          init=args.student_init, examples=examples, options={k: getattr(args, k) for k in OPTIONS},
                          vectors=args.glove_embs, layer_map_fn=functools.partial(
                              uniform_layer_map, num_layers_T=teachers[0].shape()["layers"]))
    students = [first] + [first.with_labels(spec.num_labels) for spec, _, _ in tasks[1:]]
    for student, (spec, _, _) in zip(students, tasks):
        student.set_label_info(label_config(spec))
    # past a model's positions Paddle fails inside the embedding lookup
    check_lengths(args.max_seq_length, list(zip(teachers, args.teacher_path)) + [
        (students[0], args.student_model_name_or_path)])
    return teachers, students


class MultiTask:
    """What the loop needs of several tasks: step -> a task's batch, the loss of a batch of task t, the dev metrics
    of every task, saving every task's model."""

    def __init__(self, args, tasks, teachers, students, config):
        from utils.batches import Plan, encode_sides
        self.tasks, self.teachers, self.students, self.config = tasks, teachers, students, config
        self.output_dir, self.eval_batch_size = args.output_dir, args.eval_batch_size
        self.data = []
        for (spec, train_ex, dev_ex), student in zip(tasks, students):
            train = encode_sides(student, teachers[0], train_ex, args.max_seq_length, spec.is_regression,
                                 f"encode {spec.name}")
            dev = {s: student.encoder.encode(ex, args.max_seq_length, spec.is_regression, desc="encode dev")
                   for s, ex in dev_ex.items()}
            self.data.append((train, dev))
        self.plans = [Plan(train.lengths, args.batch_size, args.seed + t, args.bucket)
                      for t, (train, _) in enumerate(self.data)]
        self.probs = task_probabilities([len(train) for train, _ in self.data], args.tau)
        self.total_steps = args.max_steps if args.max_steps > 0 else int(np.ceil(
            args.num_train_epochs * sum(p.steps_per_epoch for p in self.plans)))
        self.schedule, self.positions = task_schedule(self.probs, self.total_steps, args.seed)

    def batch_at(self, step):
        from utils.batches import to_tensors
        t = int(self.schedule[step - 1])
        index = self.plans[t].index(self.positions[step - 1] + 1)
        batch = to_tensors(self.data[t][0].batch(index))
        batch["task"] = t
        return batch, index, len(index)

    def loss(self, batch, index, progress):
        import paddle

        from utils.distill import prediction_terms, total_loss
        t, spec = batch["task"], self.tasks[batch["task"]][0]
        with paddle.no_grad():
            logits_T = self.teachers[t](batch["T"])["logits"]
        terms, info = prediction_terms(self.config, self.students[t](batch["S"])["logits"], logits_T, batch["labels"],
                                       spec.is_regression, progress)
        total, logged = total_loss(terms)
        return total, {f"{spec.name}/{k}": v for k, v in logged.items()}, info

    def evaluate(self):
        from utils.training import evaluate
        metrics = {}
        for (spec, _, _), student, (_, dev) in zip(self.tasks, self.students, self.data):
            for key, value in evaluate(spec, student, dev, self.eval_batch_size).items():
                metrics[f"eval_{spec.name}_{key[len('eval_'):]}"] = value
        metrics["eval_mean_main"] = float(np.mean([metrics[f"eval_{s.name}_{s.main_metric}"]
                                                   for s, _, _ in self.tasks]))
        return metrics

    def save_best(self):
        from utils.adapters import save_adapter
        for (spec, _, _), student in zip(self.tasks, self.students):
            save_adapter(student, os.path.join(self.output_dir, "best_model", spec.name))

    def steps_per_task(self):
        return {spec.name: int((self.schedule == t).sum()) for t, (spec, _, _) in enumerate(self.tasks)}


@exits_cleanly(resume=FROM_CHECKPOINT)
def main(argv=None):
    args = parse_args(argv)
    tasks = load_tasks(args)
    import paddle

    from utils import loop, run
    from utils.presets import resolve_config
    settings = run.Settings.of(args)
    run.begin(settings)
    teachers, students = build_models(args, tasks)
    config = resolve_config(raw_config(args), students[0], teachers, source=args.distill_config)
    if config["intermediate_matches"]:
        raise UserError("multi-task distillation is prediction-layer only: remove intermediate_matches",
                        args.distill_config)
    multi = MultiTask(args, tasks, teachers, students, config)
    phase = loop.Phase(name="multi-task", steps=multi.total_steps, loss=multi.loss, evaluate=multi.evaluate,
                       key="eval_mean_main", save_best=multi.save_best)
    job = run.job("multi-task", settings, paddle.nn.LayerList(students), [phase], multi.batch_at, loop.fingerprint(
        vars(args), [e for _, train, _ in tasks for e in train], teachers=loop.digest_files(args.teacher_path),
        config=run.digest(config)))
    results = run.train(job, run.start(job, settings), run.Record(
        "multitask_distill.py", argv, vars(args), dict(task_probabilities=multi.probs), {"distill_config.json": config}))
    results["steps_per_task"] = multi.steps_per_task()
    return run.finish(job, results)


if __name__ == "__main__":
    main(sys.argv[1:])
