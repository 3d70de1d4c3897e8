"""``AIF``: the drop-in fusion layer, an ``nn.Module`` around the AIF op."""
from __future__ import annotations

from torch import Tensor, nn

from .backend import check_backend_choice
from .eager import accumulation_dtype
from .ops import aif
from .reference import aif_gate
from .validation import check_inputs, check_mask_for_fused_op, check_module_sizes, check_param_dtypes


class AIF(nn.Module):
    """Attentional fusion of the last encoder layer X with a lower layer Y.

    ``W = X + Y``; ``g = masked_mean_T(W)``; ``G = global_up(relu(global_down(g)))``;
    ``L = local_up(relu(local_down(W)))``; ``M = σ(L + G)``; ``Z = M ⊙ X + (1 − M) ⊙ Y``.

    Args:
        hidden_size: E, the last dimension of X and Y.
        reduction: r, the bottleneck is H = E / r wide (E must divide by r).
        backend: "auto" (triton on GPU tensors when Triton works, else torch; the
            environment variable DLFA_BACKEND overrides it), "triton" or "torch".
            A bad name, here or in DLFA_BACKEND, raises ValueError at construction.

    Padding: a padded position never reaches another token's output or the global mean,
    whatever it holds (NaN and Inf included); it gets an output of its own by the same
    formula. Gradients are the exact derivative of this forward on both backends, and
    every token, padding included, feeds the weight gradients through its own output:
    a NaN or Inf at a padded position of sequence b makes the parameter gradients and
    sequence b's input gradients non-finite, even where the upstream gradient at padding
    is zero (0·NaN is NaN). Clean such values upstream: ``torch.nan_to_num(x)``, or
    ``x.masked_fill(attention_mask[..., None] == 0, 0)`` (not ``x * mask``: NaN·0 is NaN).

    Transforms: under ``torch.func`` (grad, jacrev, jvp, vmap), forward-mode AD and double
    backward (``create_graph=True``) the layer computes with differentiable PyTorch ops
    (the reference math, float32 accumulation) instead of the backend.

    Shapes: x, y: (B, T, E); attention_mask: (B, T), 1 = token, 0 = padding, or None.
    Returns z: (B, T, E).
    """

    def __init__(self, hidden_size: int, reduction: int = 4, backend: str = "auto", device=None, dtype=None):
        super().__init__()
        bottleneck = check_module_sizes(hidden_size, reduction)
        self.hidden_size = hidden_size
        self.reduction = reduction
        check_backend_choice(backend)
        self.backend = backend
        factory = {"device": device, "dtype": dtype}
        self.local_down = nn.Linear(hidden_size, bottleneck, **factory)
        self.local_up = nn.Linear(bottleneck, hidden_size, **factory)
        self.global_down = nn.Linear(hidden_size, bottleneck, **factory)
        self.global_up = nn.Linear(bottleneck, hidden_size, **factory)

    def forward(self, x: Tensor, y: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        self._check_hidden_size(x)
        return aif(x, y, attention_mask, *self._params(), backend=self.backend)

    def gate(self, x: Tensor, y: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The gate M: (B, T, E), how much each token draws from X (1) rather than Y (0).

        Computed with the reference math in the op's accumulation dtype (float32; float64 for
        float64 inputs), as the op computes it, so it is finite wherever the op's output is
        (X + Y may overflow float16). For inspection: the fused op never stores M. Runs the
        same input checks as :meth:`forward`; returns M in the accumulation dtype.
        """
        self._check_hidden_size(x)
        params = self._params()
        check_inputs(x, y, attention_mask, params)
        check_param_dtypes(x, params)
        check_mask_for_fused_op(attention_mask)
        acc = accumulation_dtype(x.dtype)
        return aif_gate(x.to(acc), y.to(acc), attention_mask, *(p.to(acc) for p in params))

    def _params(self) -> tuple[Tensor, ...]:
        return (self.local_down.weight, self.local_down.bias, self.local_up.weight, self.local_up.bias,
                self.global_down.weight, self.global_down.bias, self.global_up.weight, self.global_up.bias)

    def _check_hidden_size(self, x) -> None:
        if isinstance(x, Tensor) and x.dim() >= 1 and x.shape[-1] != self.hidden_size:
            raise ValueError(
                f"x has last dimension {x.shape[-1]} (shape {tuple(x.shape)}), "
                f"but this AIF was built for hidden_size={self.hidden_size}"
            )

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, reduction={self.reduction}, backend={self.backend!r}"
