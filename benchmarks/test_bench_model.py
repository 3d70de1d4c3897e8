"""One training step of DLFAForSequenceClassification: fused AIF vs eager (torch backend) AIF, tokens/s."""
import pytest
import torch
from transformers import BertConfig

from bench_utils import DEVICE, ON_GPU, gpu_median_ms
from dlfa_models import DLFAConfig, DLFAForSequenceClassification

# mBERT-base (random weights) on a GPU; a tiny encoder on a CPU to stay within the suite's minutes
ENCODER = (dict(vocab_size=119547, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072) if ON_GPU else
           dict(vocab_size=1000, hidden_size=96, num_hidden_layers=2, num_attention_heads=2, intermediate_size=192))
B, T = (32, 128) if ON_GPU else (4, 32)


@pytest.mark.parametrize("aif_backend", ["triton", "torch"], ids=["fused", "eager"])
def test_training_step(benchmark, aif_backend):
    if aif_backend == "triton" and not ON_GPU:
        pytest.skip("the fused Triton kernels need a CUDA GPU (the CPU interpreter is no timing)")
    torch.manual_seed(0)
    config = DLFAConfig(encoder=BertConfig(**ENCODER), fusion_layer=ENCODER["num_hidden_layers"] // 2,
                        num_labels=1, aif_backend=aif_backend)
    model = DLFAForSequenceClassification(config).to(DEVICE).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(1000 if ON_GPU else 5, ENCODER["vocab_size"], (B, T), device=DEVICE)
    mask = torch.ones(B, T, dtype=torch.long, device=DEVICE)
    mask[:, T * 3 // 4:] = 0
    labels = torch.rand(B, device=DEVICE) * 5
    autocast = torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=ON_GPU)

    def step(_=None):
        with autocast:
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if ON_GPU:
            torch.cuda.synchronize()

    step()
    benchmark.pedantic(step, rounds=10 if ON_GPU else 3, warmup_rounds=1)
    benchmark.extra_info.update(provider="fused" if aif_backend == "triton" else "eager", B=B, T=T,
                                hidden=ENCODER["hidden_size"], layers=ENCODER["num_hidden_layers"])
    seconds = benchmark.stats.stats.median
    if ON_GPU:
        seconds = gpu_median_ms(step, lambda i: i, 1, reps=10, warmup=2) / 1e3
    benchmark.extra_info["tokens_per_s"] = B * T / seconds
