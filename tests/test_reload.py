"""A model changed by apply_dlfa, saved with save_pretrained, reloads whole through from_pretrained:
its own class and the Auto classes rebuild the AIF from config.json (after ``import dlfa_models``)."""
import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification, pipeline

import dlfa_models as dm
from dlfa_kernels import AIF
from tiny_assets import make_encoder, token_batch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def fused_model():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2)
    model = dm.apply_dlfa(BertForSequenceClassification(config), fusion_layer=1, backend="torch")
    with torch.no_grad():  # a trained-looking AIF: away from its initialisation
        for p in model.bert.aif.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return model.eval()


@pytest.mark.parametrize("loader", [BertForSequenceClassification, AutoModelForSequenceClassification])
def test_from_pretrained_keeps_the_aif(loader, tmp_path):
    model = fused_model()
    ids, mask = token_batch(low=3)
    expected = model(input_ids=ids, attention_mask=mask).logits
    model.save_pretrained(tmp_path)
    loaded, info = loader.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]
    assert isinstance(loaded.bert.aif, AIF) and loaded.bert.dlfa_fusion_layer == 1
    torch.testing.assert_close(loaded.eval()(input_ids=ids, attention_mask=mask).logits, expected, rtol=0, atol=0)
    torch.testing.assert_close(loaded.bert.aif.local_up.weight, model.bert.aif.local_up.weight, rtol=0, atol=0)


def test_from_config_builds_the_aif():
    rebuilt = BertForSequenceClassification(fused_model().config)
    assert isinstance(rebuilt.bert.aif, AIF) and rebuilt.config.dlfa["fusion_layer"] == 1


def test_pipeline_of_a_saved_apply_dlfa_model_uses_the_aif(tmp_path):
    from transformers import AutoTokenizer

    encoder = make_encoder(tmp_path / "encoder")
    torch.manual_seed(0)
    model = dm.apply_dlfa(AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=2), fusion_layer=1)
    with torch.no_grad():
        for p in model.bert.aif.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(tmp_path / "saved")
    text = "the man plays the guitar"
    with torch.no_grad():
        expected = model.eval()(**tokenizer(text, return_tensors="pt")).logits.softmax(-1)[0]
    got = pipeline("text-classification", model=str(tmp_path / "saved"), top_k=None)([text])[0]
    by_label = {d["label"]: d["score"] for d in got}
    assert [by_label["LABEL_0"], by_label["LABEL_1"]] == pytest.approx(expected.tolist(), abs=1e-6)


def test_an_apply_dlfa_model_is_no_encoder_for_a_dlfa_model(tmp_path):
    fused_model().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="changed by apply_dlfa"):
        dm.DLFAForSequenceClassification.from_encoder(str(tmp_path), fusion_layer=1, num_labels=2)
