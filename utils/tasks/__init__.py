"""Task types beyond one label per example: what a task type knows (reader, label alignment, which logits
positions count, metric, post-processing) lives in one module each, so the loop, losses and cache stay generic.
Sequence classification (GLUE and custom TSVs) is utils/glue.py; token classification is tokens.py; span
extraction is spans.py."""


def check_data_dir(args, files, form):
    """--data_dir is given and is a folder; `files` names what it holds (e.g. "train.txt and dev.txt")."""
    import os

    from utils.errors import UserError
    if not args.data_dir:
        raise UserError(f"--task_name {args.task_name} needs --data_dir, a folder with {files} ({form})")
    if not os.path.isdir(args.data_dir):
        raise UserError(f"no such directory; expected a folder with {files}", args.data_dir)
