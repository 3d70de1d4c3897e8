"""gate_init: the AIF (and the model) start at exactly p·X + (1 − p)·Y, and training moves away from it."""
import pytest
import torch
from transformers import AutoModelForSequenceClassification

import dlfa_models as dm
from dlfa_kernels import AIF
from tiny_assets import make_encoder, tiny_bert_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def inputs(B=3, T=7, E=32, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = (torch.randn(B, T, E, generator=g, dtype=dtype) * 3 for _ in range(2))
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, 4:] = 0
    mask[2] = 0  # an all-padding row
    return x, y, mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("backend,dtype", [("torch", torch.float64), ("torch", torch.float32),
                                           ("triton", torch.float32)])
def test_aif_starts_at_the_chosen_mix(backend, dtype, p):
    torch.manual_seed(0)
    aif = dm.init_gate(AIF(32, 4, backend=backend).to(dtype), p)
    x, y, mask = inputs(dtype=dtype)
    expected = p * x + (1 - p) * y
    # only the rounding of σ(logit(p)) and of the fusion itself: a few ulps
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    torch.testing.assert_close(aif(x, y, mask), expected, rtol=tol, atol=tol)
    torch.testing.assert_close(aif.gate(x, y, mask), torch.full_like(x, p), rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_up_projections_get_gradients_and_training_moves_the_gate(backend):
    torch.manual_seed(0)
    aif = dm.init_gate(AIF(32, 4, backend=backend), 0.9)
    x, y, mask = inputs()
    loss = (aif(x, y, mask) * torch.randn_like(x)).sum()
    loss.backward()
    for linear in (aif.local_up, aif.global_up):
        assert linear.weight.grad.abs().sum() > 0 and linear.bias.grad.abs().sum() > 0
    torch.optim.SGD(aif.parameters(), lr=1e-2).step()
    gate = aif.gate(x, y, mask)
    assert (gate - 0.9).abs().max() > 1e-4


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_model_starts_at_the_chosen_mix(backend):
    torch.manual_seed(0)
    config = dm.DLFAConfig(encoder=tiny_bert_config(), fusion_layer=1, aif_backend=backend, gate_init=0.7)
    model = dm.DLFAModel(config).eval()
    ids = torch.randint(1, 99, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    hs = model.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).last_hidden_state,
                               0.7 * hs[-1] + 0.3 * hs[1], rtol=2e-6, atol=2e-6)


def test_random_init_is_the_default_and_documented():
    torch.manual_seed(0)
    model = dm.DLFAModel(dm.DLFAConfig(encoder=tiny_bert_config(), fusion_layer=1, gate_init="random"))
    assert model.config.gate_init is None
    for linear in (model.aif.local_up, model.aif.global_up):
        assert linear.weight.std() > 0.01 and torch.equal(linear.bias, torch.zeros_like(linear.bias))


def test_saved_model_keeps_its_trained_aif_not_the_gate_init(tmp_path):
    """The gate init is an initialisation: loading a trained checkpoint must not reset the up-projections."""
    torch.manual_seed(0)
    config = dm.DLFAConfig(encoder=tiny_bert_config(), fusion_layer=1, gate_init=0.9, num_labels=2)
    model = dm.DLFAForSequenceClassification(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert loaded.config.gate_init == 0.9
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_from_encoder_passes_gate_init(tmp_path):
    folder = make_encoder(tmp_path / "enc", layers=3)
    model = dm.DLFAForSequenceClassification.from_encoder(str(folder), fusion_layer=1, gate_init=0.5, num_labels=1)
    assert torch.equal(model.dlfa.aif.local_up.bias, torch.zeros(32))  # logit(0.5) = 0
    assert torch.equal(model.dlfa.aif.local_up.weight, torch.zeros(32, 8))


@pytest.mark.parametrize("bad", [0, 1, 1.0, -0.5, 2, float("nan"), True, "0.5", "zeros"])
def test_bad_gate_init_is_refused(bad):
    with pytest.raises(ValueError, match="gate_init must be"):
        dm.DLFAConfig(encoder=tiny_bert_config(), gate_init=bad)
    with pytest.raises(ValueError, match="gate_init must be"):
        dm.init_gate(AIF(32, 4), bad)
