"""A Distiller: what distillation adds to the one loop. It holds the student's and the teachers' outputs and the
resolved config (utils/presets.py), and gives the loop a batch's loss terms, the intermediate-loss evaluation and
the loop's phases. task_distill.py and general_distill.py build one; the loop never knows it distils."""
import functools
import os

import paddle

from utils import loop
from utils.batches import eval_batches, to_tensors
from utils.distill import best_folder, lr_multipliers, match_terms, prediction_terms, teacher_positions, total_loss

INTER_LOSS = "eval_inter_loss"  # the key of the intermediate-loss evaluation


class Distiller:
    """student_out: the student's DistillOutputs (forward_S: what runs it, DistillOutputs or its DataParallel);
    teacher_outs: one callable per teacher (None where a teacher never runs); task: the task spec (its
    is_regression, main_metric, and the task type's view of per-position logits), None without labels."""

    def __init__(self, config, student, student_out, teacher_outs, teacher_weights=None, task=None, forward_S=None):
        self.config, self.student, self.student_out = config, student, student_out
        self.teacher_outs = teacher_outs
        self.teacher_weights = teacher_weights or [1.0] * len(teacher_outs)
        self.task = task
        self.forward_S = forward_S or student_out
        self.cache = None  # the label store's logits of every training row, when the teachers' logits are stored

    @property
    def regression(self):
        return bool(self.task and self.task.is_regression)

    def losses(self, batch, index=None, progress=1.0, phase=None):
        """(weighted total, {tag: value}, {temperature, kd_weight, hard_weight}) of one batch in one phase (default
        the last). Teachers run under no_grad: their outputs are targets only; stored logits replace their forward
        pass when nothing else (no intermediate match of this phase) needs it."""
        phase = phase or self.config["phases"][-1]
        active, kd, hard = phase["matches"], phase["kd_weight"], phase["hard_label_weight"]
        from_cache = self.cache is not None and index is not None
        positions = teacher_positions(self.config, active)
        outs_T = [None] * len(self.teacher_outs)
        with paddle.no_grad():
            for i, t_out in enumerate(self.teacher_outs):
                if positions.get(i) or (kd and not from_cache):
                    outs_T[i] = t_out(batch["T"], positions.get(i, []), logits=bool(kd) and not from_cache)
        out_S = self.forward_S(batch["S"], active, bool(kd or hard))
        terms = match_terms(self.config, out_S["features"], [o and o["features"] for o in outs_T], out_S["mask"],
                            active) if active else []
        info = {}
        if kd or hard:
            logits_T = self._teacher_logits(outs_T, index) if kd else None
            more, info = prediction_terms(dict(self.config, kd_weight=kd, hard_label_weight=hard), out_S["logits"],
                                          logits_T, batch["labels"], self.regression, progress,
                                          getattr(self.task, "view", None))
            terms += more
        total, logged = total_loss(terms)
        return total, logged, info

    def _teacher_logits(self, outs_T, index):
        """The stored logits of the batch's rows, or the teachers' weighted mean."""
        if self.cache is not None and index is not None:
            from utils.labels import batch_logits
            return paddle.to_tensor(batch_logits(self.cache, index))
        w = self.teacher_weights
        return sum(wi * o["logits"] for wi, o in zip(w, outs_T)) / sum(w)

    def phase_loss(self, phase, batch, index, progress):
        return self.losses(batch, index, progress, phase)

    def intermediate_loss(self, phase, held_out, batch_size):
        """{INTER_LOSS: the phase's intermediate terms over held_out (Sides), per example}."""
        only_matches = dict(phase, kd_weight=0.0, hard_label_weight=0.0)
        total = 0.0
        with paddle.no_grad():
            for index in eval_batches(held_out.lengths, batch_size):
                loss, _, _ = self.losses(to_tensors(held_out.batch(index)), phase=only_matches)
                total += float(loss) * len(index)
        return {INTER_LOSS: total / len(held_out)}

    def loop_phases(self, phase_steps, output_dir, held_out, batch_size, evaluate_metric=None, final_folder=None):
        """The config's phases as the loop runs them. A phase selected by its dev metric evaluates with
        evaluate_metric; by intermediate loss, over held_out. Each keeps its selected model in its best_folder
        (final_folder for the last phase when given), and the next phase starts from it unless selected by "last"."""
        phases = self.config["phases"]
        out = []
        for i, phase in enumerate(phases):
            final = i == len(phases) - 1
            folder = final_folder if final and final_folder else best_folder(phases, i)
            folder = folder and os.path.join(output_dir, folder)
            select = phase["select"]
            inter = functools.partial(self.intermediate_loss, phase, held_out, batch_size)
            predicts = bool(phase["kd_weight"] or phase["hard_label_weight"])
            metric = f"eval_{getattr(self.task, 'main_metric', '')}"
            out.append(loop.Phase(
                name=phase["name"], steps=phase_steps[i], loss=functools.partial(self.phase_loss, phase),
                evaluate={"metric": evaluate_metric, "inter_loss": inter,
                          "last": evaluate_metric if predicts else inter}[select],
                key={"inter_loss": INTER_LOSS, "metric": metric, "last": metric if predicts else None}[select],
                keep_last=select == "last",
                lower_is_better=select == "inter_loss", save_best=functools.partial(save_model, self.student, folder),
                multipliers=lr_multipliers(phase, self.student_out, self.student),
                restore_best=functools.partial(self.student.restore, folder) if not final and select != "last"
                else None))
        return out


def save_model(adapter, folder):
    """A phase's selected model into its folder (nothing for a phase that keeps none)."""
    if folder:
        from utils.adapters import save_adapter
        save_adapter(adapter, folder)
