"""``DLFATrainer``: the Hugging Face ``Trainer`` with an AIF learning rate and gate statistics in prediction."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import torch
from torch.utils.data import SequentialSampler
from transformers import Trainer
from transformers.trainer_callback import ProgressCallback, TrainerCallback
from transformers.trainer_utils import has_length

AIF_PARAMETER = ".aif."  # in the names of the AIF's parameters (dlfa.aif.local_down.weight, ...)
EMBEDDINGS = ("embeddings", "embeddings_b")  # the bi-encoder's pooled embeddings among its outputs


class DLFATrainer(Trainer):
    """``aif_lr``: learning rate of the AIF parameters; everything else as the Trainer's own
    optimizer (same optimizer class and kwargs, no weight decay on biases and LayerNorm weights).

    With ``collect_gates`` set, prediction also returns the model's per-sequence gate
    statistics: ``predictions`` becomes ``(logits, {"gate_mean": (N,), "gate_token_sum": (N,), ...})``
    (the fields of ``dlfa_models.GATE_STAT_FIELDS``),
    computed by the model's forward from the AIF's own inputs (no second pass).
    """

    def __init__(self, *args, aif_lr: Optional[float] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.aif_lr = aif_lr
        self.collect_gates = False

    def create_optimizer(self, model=None):
        if self.aif_lr is None or self.optimizer is not None:
            return super().create_optimizer(model)
        optimizer = super().create_optimizer(model)
        opt_model = self.model if model is None else model
        aif = {id(p) for n, p in opt_model.named_parameters() if AIF_PARAMETER in f".{n}"}
        groups = list(optimizer.param_groups)
        optimizer.param_groups.clear()  # no step taken yet: no state to carry over
        for group in groups:  # each of the Trainer's (decay / no-decay) groups split: the rest, the AIF
            rest = [p for p in group["params"] if id(p) not in aif]
            own = [p for p in group["params"] if id(p) in aif]
            if rest:
                optimizer.add_param_group({**group, "params": rest})
            if own:
                optimizer.add_param_group({**group, "params": own, "lr": self.aif_lr})
        return optimizer

    def get_eval_dataloader(self, eval_dataset=None):
        with _every_example(self.args):
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        with _every_example(self.args):
            return super().get_test_dataloader(test_dataset)

    def _get_eval_sampler(self, eval_dataset):
        """Evaluation and prediction always in dataset order (sharded by accelerate when distributed):
        prediction files, sliding windows and the length-ordered scoring rely on it, and the Trainer
        would otherwise group evaluation by length too under ``--train_sampling_strategy group_by_length``."""
        if eval_dataset is None or not has_length(eval_dataset) or self.args.world_size > 1:
            return None
        return SequentialSampler(eval_dataset)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        if ignore_keys is None:  # a bi-encoder's embeddings are not scored: predictions stay the logits alone
            ignore_keys = [*getattr(model.config, "keys_to_ignore_at_inference", []), *EMBEDDINGS]
        if not self.collect_gates or prediction_loss_only:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            out = model(**inputs, output_gate_stats=True)
        gates = {k: v.detach() for k, v in out.items() if k.startswith("gate_") and torch.is_tensor(v)}
        loss = out["loss"].detach().mean() if out.get("loss") is not None else None
        return loss, (out["logits"].detach(), gates), inputs.get("labels")


@contextmanager
def _every_example(args):
    """Scoring drops no last batch: ``--dataloader_drop_last`` is for training batches only."""
    drop_last, args.dataloader_drop_last = args.dataloader_drop_last, False
    try:
        yield
    finally:
        args.dataloader_drop_last = drop_last


class TrainingProgressOnly(ProgressCallback):
    """The Trainer's progress bar for training, without a bar for every evaluation and prediction."""

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        pass


class CheckpointBarrier(TrainerCallback):
    """Holds every process until a checkpoint is completely written. The Trainer loads the best
    checkpoint at the end of training without a barrier of its own, so under torchrun a process
    that ran ahead could read the weights the main process is still writing."""

    def on_save(self, args, state, control, **kwargs):
        if args.world_size > 1:
            from accelerate import PartialState

            PartialState().wait_for_everyone()
