"""Test setup: without a CUDA GPU, Triton kernels run under the interpreter on the CPU."""
import os

import torch

if not torch.cuda.is_available():
    # must be set before triton decorates the kernels (at import of dlfa_kernels)
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
os.environ.pop("DLFA_BACKEND", None)
os.environ["DLFA_CHECK_INPUTS"] = "1"  # the op checks mask values on every device (a sync on GPUs)
