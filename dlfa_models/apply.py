"""``apply_dlfa``: give an already-built Hugging Face encoder model DLFA fusion, in place.

Like Liger-Kernel's ``apply_liger_kernel_to_*``, one line turns a pipeline's model
(BERT, XLM-R, DistilBERT, DeBERTa-v2, ELECTRA, ... as a bare encoder or with its
``*ForSequenceClassification`` / ``*ForTokenClassification`` head) into its DLFA
version: the encoder's last hidden state becomes AIF(last, hidden_states[k]).
"""
from __future__ import annotations

import functools
import inspect
import os
import types
from typing import Union

import torch
from transformers import AutoConfig, PreTrainedModel

from dlfa_kernels import AIF

from .configuration_dlfa import check_fusion_settings, check_gate_init
from .gate_init import init_gate

CONFIG_KEY = "dlfa"  # the config attribute (saved in config.json) that records the fusion settings


def apply_dlfa(
    model: PreTrainedModel,
    fusion_layer: Union[int, str],
    reduction: int = 4,
    backend: str = "auto",
    gate_init: Union[float, str, None] = None,
) -> PreTrainedModel:
    """Fuse ``model``'s last hidden state with its layer ``fusion_layer``, in place; returns ``model``.

    The AIF becomes the submodule ``aif`` of the encoder (``model.base_model``, e.g.
    ``model.bert``): its parameters are the model's (optimizers and ``save_pretrained``
    see them), the encoder's own parameter names are unchanged. The encoder's forward
    then returns the same output type with ``last_hidden_state`` fused (and, where the
    encoder has a pooler, ``pooler_output`` recomputed from it), so every head above it
    reads fused states. ``hidden_states`` stays the unfused per-layer tuple and is only
    returned when asked for.

    Args:
        model: a Hugging Face encoder-only model (``PreTrainedModel``), not yet DLFA'd.
        fusion_layer: index into the encoder's hidden states (0 = embeddings) of the lower
            layer, or "middle" (``num_hidden_layers // 2``).
        reduction, backend, gate_init: as ``reduction``, ``aif_backend`` and ``gate_init``
            of :class:`dlfa_models.DLFAConfig` (``gate_init=None``: random AIF weights,
            N(0, initializer_range), biases zero).

    The settings are written to ``model.config.dlfa`` (so into ``config.json``), and a model
    built from such a config gets its AIF back (see :func:`_restore_dlfa`): ``from_pretrained``
    of the model's own class or of an Auto class reloads a saved model whole.
    """
    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"apply_dlfa needs a Hugging Face PreTrainedModel, got {type(model).__name__}")
    base = model.base_model
    if isinstance(getattr(base, "aif", None), AIF):
        raise ValueError(f"{type(model).__name__} already has DLFA fusion (layer {base.dlfa_fusion_layer})")
    if fusion_layer is None:
        raise ValueError("apply_dlfa needs a fusion_layer (an int or 'middle'); None would leave the model unchanged")
    layer = check_fusion_settings(base.config, fusion_layer, reduction, backend)
    gate_init = check_gate_init(gate_init)
    reference = next(base.parameters())
    aif = AIF(base.config.hidden_size, reduction, backend=backend, device=reference.device, dtype=reference.dtype)
    with torch.no_grad():
        std = getattr(base.config, "initializer_range", 0.02)
        for linear in (aif.local_down, aif.local_up, aif.global_down, aif.global_up):
            linear.weight.normal_(0.0, std)
            linear.bias.zero_()
    if gate_init is not None:
        init_gate(aif, gate_init)
    base.aif = aif
    base.dlfa_fusion_layer = layer
    base.forward = types.MethodType(_fused_forward(type(base).forward), base)
    setattr(model.config, CONFIG_KEY,
            {"fusion_layer": layer, "reduction": reduction, "backend": backend, "gate_init": gate_init})
    return model


def _fused_forward(encoder_forward):
    """The encoder class's forward with DLFA fusion of its output (bound per instance by apply_dlfa).

    It closes over the class's function, not the instance, so a deep copy of the model
    rebinds it to the copy; ``functools.wraps`` keeps the signature for the Trainer.
    """
    signature = inspect.signature(encoder_forward)
    var_keyword = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)

    def request(bound: inspect.BoundArguments, name: str, value):
        """Set argument ``name`` (a parameter of its own or one of **kwargs); returns what the caller gave."""
        if name in signature.parameters:
            given, bound.arguments[name] = bound.arguments.get(name), value
        else:
            extra = bound.arguments.setdefault(var_keyword, {})
            given, extra[name] = extra.get(name), value
        return given

    @functools.wraps(encoder_forward)
    def forward(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        want_hidden = request(bound, "output_hidden_states", True)
        return_dict = request(bound, "return_dict", True)
        out = encoder_forward(*bound.args, **bound.kwargs)
        fused = self.aif(out.last_hidden_state, out.hidden_states[self.dlfa_fusion_layer],
                         bound.arguments.get("attention_mask"))
        fields = dict(out.items(), last_hidden_state=fused)
        if not (getattr(self.config, "output_hidden_states", False) if want_hidden is None else want_hidden):
            fields.pop("hidden_states")
        if fields.get("pooler_output") is not None and getattr(self, "pooler", None) is not None:
            fields["pooler_output"] = self.pooler(fused)
        out = type(out)(**fields)
        if return_dict is None:
            return_dict = getattr(self.config, "return_dict", True)
        return out if return_dict else out.to_tuple()

    return forward


def load_dlfa_pretrained(model_class, path: Union[str, os.PathLike], **config_kwargs):
    """Reload a model that was saved (``save_pretrained``) after :func:`apply_dlfa`, from a local folder.

    ``model_class``: the model's class (``BertForSequenceClassification``) or an Auto class
    (``AutoModelForSequenceClassification``). ``model_class.from_pretrained`` does the same (the AIF
    comes back from the saved ``config.dlfa``); this also refuses a folder saved without DLFA and
    any missing or unexpected weight. ``config_kwargs`` override config fields (as ``from_pretrained``'s).
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"the model folder {os.fspath(path)!r} does not exist")
    config = AutoConfig.from_pretrained(path, **config_kwargs)
    if not isinstance(getattr(config, CONFIG_KEY, None), dict):
        raise ValueError(f"{os.fspath(path)!r} was not saved from an apply_dlfa'd model (its config has no "
                         f"'{CONFIG_KEY}' settings); load it with {model_class.__name__}.from_pretrained")
    model, info = model_class.from_pretrained(path, config=config, output_loading_info=True)
    wrong = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if wrong:
        raise ValueError(f"{os.fspath(path)!r} does not match {type(model).__name__} with DLFA: {wrong}")
    return model.eval()


def _restore_dlfa(model: PreTrainedModel) -> None:
    """Give a model built from a config that records :func:`apply_dlfa` settings its AIF back.

    Called at the end of every Hugging Face model's construction (``post_init``), so
    ``from_pretrained`` of the model's class or an Auto class, ``from_config`` and ``cls(config)``
    all rebuild the AIF before the saved weights are loaded into it. Without this hook
    transformers would drop the saved ``*.aif.*`` weights as unexpected and return the
    unfused model. Configs without the ``dlfa`` key are untouched.
    """
    settings = getattr(model.config, CONFIG_KEY, None)
    if isinstance(settings, dict) and not isinstance(getattr(model.base_model, "aif", None), AIF):
        apply_dlfa(model, **settings)


def _install_restore_hook() -> None:
    """Wrap ``PreTrainedModel.post_init`` with :func:`_restore_dlfa` (once; importing dlfa_models does it)."""
    post_init = PreTrainedModel.post_init
    if getattr(post_init, "dlfa_restores", False):
        return

    @functools.wraps(post_init)
    def post_init_restoring_dlfa(self, *args, **kwargs):
        post_init(self, *args, **kwargs)
        _restore_dlfa(self)

    post_init_restoring_dlfa.dlfa_restores = True
    PreTrainedModel.post_init = post_init_restoring_dlfa


_install_restore_hook()
