"""Run under torchrun by tests/test_training.py: train a tiny model, write each rank's final weights' digest."""
import hashlib
import json
import os
import sys
from pathlib import Path

import torch.distributed as dist
from transformers import AutoTokenizer

from dlfa_models.data import TASKS
from dlfa_models.training.build import load_data
from dlfa_models.training.parsing import parse_args
from dlfa_models.training.planning import Setting
from dlfa_models.training.run import train_one


def main(encoder: str, data: str, out: str) -> None:
    args = parse_args(["--task", "sts", "--encoder", encoder, "--data", data, "--source-langs", "en",
                       "--eval-langs", "en,de", "--eval-split", "dev", "--max-steps", "4", "--batch-size", "4",
                       "--output-dir", out, "--backend", "torch", "--max-length", "64"])
    task = TASKS["sts"]
    result, trainer = train_one(args, task, load_data(args, task), encoder, AutoTokenizer.from_pretrained(encoder),
                                Setting(1), args.training.seed, Path(out))
    state = trainer.model.state_dict()
    digest = hashlib.sha256(b"".join(state[k].detach().cpu().numpy().tobytes() for k in sorted(state))).hexdigest()
    Path(out, f"rank{os.environ['RANK']}.json").write_text(json.dumps({
        "digest": digest, "scores": result["scores"], "parallel_mode": trainer.args.parallel_mode.value,
        "train_batches": len(trainer.get_train_dataloader()), "best": trainer.state.best_model_checkpoint}))
    # close the gloo group on every rank together: left to interpreter exit, its threads can abort a rank
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
