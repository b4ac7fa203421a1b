"""Task types beyond one label per example: what a task type knows (reader, label alignment, which logits
positions count, metric, post-processing) lives in one module each, so the loop, losses and cache stay generic.
Sequence classification (GLUE and custom TSVs) is utils/glue.py; token classification is tokens.py."""
