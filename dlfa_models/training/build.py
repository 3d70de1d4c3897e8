"""What a run is built from: its data (every split loaded and checked before training), its model, its
learning-curve callback and its ``Trainer``."""
from __future__ import annotations

from pathlib import Path

from ..data import SCORE_RANGE, DataError, Task, limit, load_split
from ..data.tokenization import check_score_range
from .arguments import BIENCODER, Arguments
from .inputs import is_biencoder, model_inputs
from .parsing import comma_list as _split
from .planning import Setting, eval_languages
from .scoring import scorer


def load_data(args: Arguments, task: Task, train: bool = True) -> dict:
    """Every split the runs need, loaded (and checked) before any training."""
    p, t = args.protocol, args.training
    sources, langs = _split(p.source_langs), eval_languages(p, task)
    if not sources or not langs:
        raise DataError("name at least one source and one evaluation language")
    from datasets import concatenate_datasets

    loaded = {"sources": sources}
    named = []
    if train:
        loaded["train"] = concatenate_datasets([load_split(task, lang, "train", p.data) for lang in sources])
        named.append(("train", loaded["train"]))
    if train or t.do_eval:
        loaded["dev"] = concatenate_datasets([load_split(task, lang, "validation", p.data) for lang in sources])
        named.append(("dev", loaded["dev"]))
    if t.do_predict:
        loaded["eval"] = {lang: load_split(task, lang, p.eval_split, p.data) for lang in langs}
        named += [(f"{p.eval_split} {k}", v) for k, v in loaded["eval"].items()]
    for name, ds in named:
        if len(ds) == 0:
            raise DataError(f"the {name} data is empty")
        if args.model.architecture == BIENCODER:  # its labels are the scores scaled to [0, 1]: check them now
            check_score_range(ds, SCORE_RANGE, f"the {name} data")
    if "train" in loaded:
        loaded["train"] = limit(loaded["train"], p.max_train_samples, p.subset_seed)
    if "dev" in loaded:
        loaded["dev"] = limit(loaded["dev"], p.max_eval_samples, p.subset_seed)
    if "eval" in loaded:
        loaded["eval"] = {k: limit(v, p.max_eval_samples, p.subset_seed) for k, v in loaded["eval"].items()}
    if train and p.curve_zero_shot:  # the zero-shot languages' dev sets, scored along the learning curve
        loaded["curve"] = {lang: limit(load_split(task, lang, "validation", p.data), p.max_eval_samples, p.subset_seed)
                           for lang in langs if lang not in sources}
    return loaded


def build_model(args: Arguments, task: Task, encoder: str, setting: Setting, seed: int):
    from transformers import set_seed

    from ..modeling_dlfa import DLFAForSequenceClassification, DLFAForTokenClassification

    m = args.model
    set_seed(seed)  # the same fresh AIF and head on every rank and every resume
    if m.architecture == BIENCODER:
        from ..encoders import sentence_prompt
        from ..modeling_biencoder import DLFAForSentenceSimilarity

        kwargs = {} if setting.gate_init is None else {"gate_init": setting.gate_init}
        # the prompt of the name given (the resolved folder of an offline encoder may not say it is e5)
        return DLFAForSentenceSimilarity.from_encoder(
            encoder, fusion_layer=setting.fusion_layer, reduction=m.reduction, aif_backend=m.backend,
            sentence_pooling=m.pooling, similarity_loss=m.similarity_loss, max_seq_length=args.protocol.max_length,
            sentence_prompt=sentence_prompt(m.model_name_or_path), **kwargs)
    cls = DLFAForTokenClassification if task.kind == "tagging" else DLFAForSequenceClassification
    kwargs = {"id2label": dict(enumerate(task.labels))} if task.labels else {}
    if setting.gate_init is not None:
        kwargs["gate_init"] = setting.gate_init
    return cls.from_encoder(encoder, fusion_layer=setting.fusion_layer, num_labels=len(task.labels) or 1,
                            reduction=m.reduction, aif_backend=m.backend, sentence_pooling=m.pooling, **kwargs)


def learning_curve(args: Arguments, task: Task, data: dict, tokenizer, model, folder: Path, main: bool):
    """The ``LearningCurve`` callback of a run: source dev, and with --curve_zero_shot the other dev sets."""
    from .curves import CURVES, LearningCurve

    p = args.protocol
    source = ",".join(data["sources"])
    dev = {source: data["dev"], **data.get("curve", {})}
    datasets = {lang: scorer(task, model_inputs(ds, tokenizer, task, p.max_length, model, f"{lang} dev"))
                for lang, ds in dev.items()}
    return LearningCurve(p.curve_steps, datasets, task.metric, [source], folder / CURVES if main else None)


def make_trainer(args: Arguments, task: Task, model, tokenizer, training_args, train_ds=None, dev_ds=None,
                 callbacks=()):
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    from .trainer import CheckpointBarrier, DLFATrainer, TrainingProgressOnly

    compute_metrics = None
    if dev_ds is not None:
        dev_ds, dev_metric = scorer(task, dev_ds)
        compute_metrics = lambda pred: dev_metric(pred.predictions, pred.label_ids)  # noqa: E731
    if is_biencoder(model):
        from ..data.pair_collator import SentencePairCollator

        collator = SentencePairCollator(tokenizer)
    elif task.kind == "tagging":
        collator = DataCollatorForTokenClassification(tokenizer)
    else:
        collator = DataCollatorWithPadding(tokenizer)
    trainer = DLFATrainer(
        model=model, args=training_args, train_dataset=train_ds, eval_dataset=dev_ds, data_collator=collator,
        processing_class=tokenizer, compute_metrics=compute_metrics, callbacks=[CheckpointBarrier(), *callbacks],
        aif_lr=args.model.aif_lr,
    )
    if not args.protocol.verbose and not training_args.disable_tqdm:
        from transformers.trainer_callback import ProgressCallback

        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(TrainingProgressOnly)
    return trainer
