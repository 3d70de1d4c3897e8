"""apply_dlfa: DLFA on already-built Hugging Face encoders (five architectures, bare and with heads)."""
import copy
import inspect

import pytest
import torch
from transformers import (
    AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification, BartConfig, BertConfig,
    BertForSequenceClassification, DebertaV2Config, DistilBertConfig, ElectraConfig, T5Config, XLMRobertaConfig,
)

import dlfa_models as dm
from tiny_assets import token_batch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SIZES = {"vocab_size": 99, "max_position_embeddings": 64}
TINY = {  # 3 layers, E = 32, random weights: each architecture in seconds
    "bert": lambda: BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                               **SIZES),
    "xlm-roberta": lambda: XLMRobertaConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                                            intermediate_size=64, **SIZES),
    "distilbert": lambda: DistilBertConfig(dim=32, n_layers=3, n_heads=2, hidden_dim=64, **SIZES),
    "deberta-v2": lambda: DebertaV2Config(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                                          intermediate_size=64, **SIZES),
    "electra": lambda: ElectraConfig(embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                                     intermediate_size=64, **SIZES),
}
HEADS = {"sequence": AutoModelForSequenceClassification, "token": AutoModelForTokenClassification}


def batch():
    return token_batch(low=3)  # ids 0-2 are special (padding) tokens in some of these vocabularies


def unfused(base, ids, mask):
    """The encoder's own forward (the class's, not the patched instance's): its hidden states."""
    return type(base).forward(base, input_ids=ids, attention_mask=mask, output_hidden_states=True, return_dict=True)


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("arch", list(TINY))
def test_apply_dlfa_forward_train_save_reload(arch, head, tmp_path):
    torch.manual_seed(0)
    config = TINY[arch]()
    config.num_labels = 3
    model = HEADS[head].from_config(config)
    n_before = sum(1 for _ in model.parameters())
    assert dm.apply_dlfa(model, fusion_layer=1, backend="torch") is model
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == n_before + 8 and sum(".aif." in n for n in names) == 8
    ids, mask = batch()

    # forward: the encoder's output is AIF(last layer, layer 1) of its unfused states
    model.eval()
    base = model.base_model
    hs = unfused(base, ids, mask).hidden_states
    torch.testing.assert_close(base(input_ids=ids, attention_mask=mask).last_hidden_state,
                               base.aif(hs[-1], hs[1], mask))

    # one training step reaches the AIF
    model.train()
    labels = torch.tensor([0, 2, 1]) if head == "sequence" else torch.randint(0, 3, ids.shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = base.aif.local_up.weight.detach().clone()
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    assert base.aif.local_up.weight.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(before, base.aif.local_up.weight)

    # save, reload, same outputs
    model.eval()
    expected = model(input_ids=ids, attention_mask=mask).logits
    model.save_pretrained(tmp_path)
    loaded = dm.load_dlfa_pretrained(HEADS[head], tmp_path)
    assert type(loaded) is type(model)
    torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask).logits, expected, rtol=0, atol=0)


def test_bert_pooler_reads_the_fused_states():
    """BERT's sequence head classifies the pooler output, computed inside the encoder: it must see fused states."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(TINY["bert"]()).eval()
    dm.apply_dlfa(model, fusion_layer=2, backend="torch")
    ids, mask = batch()
    hs = unfused(model.bert, ids, mask).hidden_states
    fused = model.bert.aif(hs[-1], hs[2], mask)
    expected = model.classifier(model.bert.pooler(fused))
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, expected)


@pytest.mark.parametrize("arch", list(TINY))
def test_bare_encoder_output_type_hidden_states_and_tuples(arch):
    torch.manual_seed(0)
    encoder = AutoModel.from_config(TINY[arch]()).eval()
    plain_type = type(encoder(input_ids=batch()[0]))
    dm.apply_dlfa(encoder, fusion_layer="middle", backend="torch")
    ids, mask = batch()
    out = encoder(input_ids=ids, attention_mask=mask)
    assert type(out) is plain_type and out.hidden_states is None
    asked = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert len(asked.hidden_states) == 4
    hs = asked.hidden_states
    torch.testing.assert_close(asked.last_hidden_state, encoder.aif(hs[-1], hs[1], mask))
    as_tuple = encoder(input_ids=ids, attention_mask=mask, return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state)
    # the Trainer reads forward's signature to pick dataset columns
    assert "input_ids" in inspect.signature(encoder.forward).parameters


def test_gate_init_and_settings_are_recorded():
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(TINY["bert"]()).eval()
    dm.apply_dlfa(model, fusion_layer=1, reduction=8, gate_init=0.75, backend="torch")
    assert model.config.dlfa == {"fusion_layer": 1, "reduction": 8, "backend": "torch", "gate_init": 0.75}
    assert model.bert.aif.local_down.weight.shape == (4, 32)
    ids, mask = batch()
    hs = unfused(model.bert, ids, mask).hidden_states
    torch.testing.assert_close(model.bert(input_ids=ids, attention_mask=mask).last_hidden_state,
                               0.75 * hs[-1] + 0.25 * hs[1])


def test_deepcopy_fuses_with_the_copy():
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(TINY["bert"]()).eval()
    dm.apply_dlfa(model, fusion_layer=1, backend="torch")
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.bert.aif.local_up.bias.add_(3.0)
    ids, mask = batch()
    assert not torch.allclose(twin(input_ids=ids, attention_mask=mask).logits,
                              model(input_ids=ids, attention_mask=mask).logits)


@pytest.mark.parametrize("call,error,match", [
    (lambda m: dm.apply_dlfa(m, fusion_layer=3), ValueError, "is the last layer itself"),
    (lambda m: dm.apply_dlfa(m, fusion_layer=None), ValueError, "needs a fusion_layer"),
    (lambda m: dm.apply_dlfa(m, fusion_layer=1, reduction=5), ValueError, "not divisible by reduction"),
    (lambda m: dm.apply_dlfa(m, fusion_layer=1, backend="cuda"), ValueError, "aif_backend must be"),
    (lambda m: dm.apply_dlfa(m, fusion_layer=1, gate_init=1.0), ValueError, "gate_init must be"),
    (lambda m: dm.apply_dlfa(dm.apply_dlfa(m, fusion_layer=1), fusion_layer=2), ValueError, "already has DLFA"),
    (lambda m: dm.apply_dlfa(torch.nn.Linear(2, 2), fusion_layer=1), TypeError, "PreTrainedModel"),
])
def test_bad_apply_dlfa_calls_are_refused(call, error, match):
    with pytest.raises(error, match=match):
        call(AutoModel.from_config(TINY["bert"]()))


@pytest.mark.parametrize("config", [T5Config(num_layers=2, d_model=32, num_heads=2, d_ff=64, d_kv=16, vocab_size=99),
                                    BartConfig(encoder_layers=2, decoder_layers=2, d_model=32, vocab_size=99)])
def test_encoder_decoder_models_are_refused(config):
    with pytest.raises(ValueError, match="encoder-decoder"):
        dm.apply_dlfa(AutoModel.from_config(config), fusion_layer=1)


def test_reload_refuses_a_model_saved_without_dlfa(tmp_path):
    AutoModel.from_config(TINY["bert"]()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not saved from an apply_dlfa'd model"):
        dm.load_dlfa_pretrained(AutoModel, tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dm.load_dlfa_pretrained(AutoModel, tmp_path / "missing")
