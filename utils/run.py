"""The part of a training script every script shares: the prologue before its models are built and the epilogue
around the one loop. A script reads parse -> begin -> build (task, models, phases) -> job -> train -> finish.

    settings = run.Settings.of(args)
    world, rank = run.begin(settings)                  # output folder checked, device and seed set
    ...build the models, the phases and batch_at...
    job = run.job(name, settings, trainable, phases, batch_at, fingerprint)
    results = run.train(job, run.start(job, settings), run.Record(script, argv, vars(args)))  # args.json, runs/
    run.finish(job, results)                           # all_results.json, the results table
"""
import hashlib
import json
import os
from dataclasses import dataclass, field, fields

from utils import loop
from utils.files import ARGS_FILE, RESULTS_FILE, check_output_dir, write_json


@dataclass(frozen=True)
class Settings:
    """What the skeleton reads of a run: the training group's flags (utils/cli.add_training_args) and the output
    folder."""
    output_dir: str
    device: str
    cpu_kernels: str
    seed: int
    resume: bool
    learning_rate: float
    warmup_proportion: float
    weight_decay: float
    max_grad_norm: float
    logging_steps: int
    save_steps: int

    @classmethod
    def of(cls, args):
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


@dataclass
class Record:
    """What a run writes beside its model: args.json (its flags, what the script adds, the command) and any JSON
    files (e.g. distill_config.json)."""
    script: str
    argv: list
    flags: dict
    extra: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # file name -> JSON value


def begin(settings, parallel=False):
    """Before any model is built: the output folder refused if it is not one a run may write (nothing is written
    yet), paddlenlp's chatter off, the device and seed set; with parallel, the processes joined. -> (world, rank)."""
    import paddle.distributed as dist

    from utils.models import quiet_paddlenlp
    from utils.training import set_device, set_seed
    check_output_dir(settings.output_dir)
    quiet_paddlenlp()
    set_device(settings.device)
    set_seed(settings.seed)
    world, rank = (dist.get_world_size(), dist.get_rank()) if parallel else (1, 0)
    if world > 1:
        dist.init_parallel_env()
    return world, rank


def digest(value):
    """A short stable hash of a JSON value (a resolved config), for fingerprints."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def job(name, settings, trainable, phases, batch_at, fingerprint, checkpoint="checkpoint", world=1, rank=0):
    """The loop's Job with its optimizer: AdamW over `trainable`, warmup and decay within each phase."""
    from utils import kernels
    from utils.training import build_optimizer
    if kernels.use(trainable, settings.cpu_kernels, settings.device):
        print(f"cpu kernels: compiled ({kernels.SOURCE})")
    steps = [p.steps for p in phases]
    optimizer, scheduler = build_optimizer(trainable, settings.learning_rate, sum(steps), settings.warmup_proportion,
                                           settings.weight_decay, settings.max_grad_norm, steps)
    return loop.Job(name=name, output_dir=settings.output_dir,
                    checkpoint_dir=os.path.join(settings.output_dir, checkpoint), trainable=trainable,
                    optimizer=optimizer, scheduler=scheduler, batch_at=batch_at, phases=phases,
                    logging_steps=settings.logging_steps, save_steps=settings.save_steps, seed=settings.seed,
                    rank=rank, world=world, fingerprint=fingerprint)


def start(job, settings):
    """loop.start: the folder locked, a checkpoint restored (or refused) before anything is written."""
    return loop.start(job, settings.resume)


def train(job, state, record):
    """args.json and the record's files (rank 0), the scalar log, the loop; -> the loop's results."""
    from utils.training import ScalarLog, command_line
    if job.rank == 0:
        os.makedirs(job.output_dir, exist_ok=True)
        write_json(os.path.join(job.output_dir, ARGS_FILE),
                   dict(record.flags, **record.extra, command=command_line(record.script, record.argv)))
        for name, value in record.files.items():
            write_json(os.path.join(job.output_dir, name), value)
    job.log = ScalarLog(os.path.join(job.output_dir, "runs"), enabled=job.rank == 0, fresh=state["step"] == 0)
    results = loop.run(job, state)
    job.log.close()
    return results


def finish(job, results):
    """all_results.json and the results table (rank 0); every process leaves together."""
    from utils.cli import print_results
    if job.rank == 0:
        write_json(os.path.join(job.output_dir, RESULTS_FILE), results)
        print_results(results)
    if job.world > 1:
        # a rank exiting while its peer still holds their connections open can abort the peer at exit (SIGABRT,
        # seen once in CI with two CPU processes)
        import paddle.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
    return results
