"""MLX stand-ins for the transformers machinery a converted modeling file imports (`torch2mlx convert --hub transformers`).

A transformers `modeling_<arch>.py` inherits from, and calls into, modules of transformers that import torch
(`modeling_utils.PreTrainedModel`, `activations.ACT2FN`, `cache_utils`, `masking_utils`, `modeling_outputs`,
...). With `--hub transformers` the converter imports those names from here instead; every other name keeps
coming from the installed transformers, whose configuration classes and `utils` are pure Python.

What each stand-in does is exactly what transformers does for an inference forward pass in eager attention;
what it does not do raises (NotImplementedError / KeyError / AttributeError) instead of computing something
else. docs/transformers.md lists both. Nothing here imports torch.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import math
from dataclasses import make_dataclass
from functools import wraps
from pathlib import Path
from typing import Optional

import mlx.core as mx
import mlx.nn as nn
from transformers.utils.generic import ModelOutput

from torch2mlx.hub.transformers import initialization  # noqa: F401  (`from ... import initialization as init`)

__all__ = [
    "ACT2CLS", "ACT2FN", "ALL_ATTENTION_FUNCTIONS", "Cache", "Conv1D", "FlashAttentionKwargs",
    "GenericForQuestionAnswering", "GenericForSequenceClassification", "GenericForTokenClassification",
    "QuickGELUActivation", "compile_compatible_method_lru_cache",
    "OutputRecorder", "ROPE_INIT_FUNCTIONS", "dynamic_rope_update", "torch_compilable_check", "DynamicCache", "EncoderDecoderCache", "GenerationMixin",
    "GradientCheckpointingLayer", "ModelOutput", "PreTrainedModel", "apply_chunking_to_forward", "auto_docstring", "capture_outputs",
    "create_bidirectional_mask", "create_causal_mask", "create_sliding_window_causal_mask", "gelu", "gelu_fast",
    "gelu_new", "gelu_python", "gelu_pytorch_tanh", "get_activation", "quick_gelu", "silu",
    "initialization", "maybe_autocast", "slice_logits_to_keep", "use_kernel_forward_from_hub",
    "use_kernel_func_from_hub", "use_kernelized_func",
]


class HubNotSupported(NotImplementedError):
    """A transformers feature the MLX stand-ins do not provide (instead of computing something else)."""


# ---------------------------------------------------------------- activations (transformers.activations)

class _Activation(nn.Module):
    def __init__(self, fn, name: str):
        super().__init__()
        self._fn, self._name = fn, name

    def __call__(self, x):
        return self._fn(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name})"


def _gelu_tanh(x):  # NewGELUActivation, GELUTanh, FastGELUActivation: the same formula
    return 0.5 * x * (1.0 + mx.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * mx.power(x, 3.0))))


_ACTIVATIONS = {
    "gelu": lambda x: x * 0.5 * (1.0 + mx.erf(x / math.sqrt(2.0))),
    "gelu_python": lambda x: x * 0.5 * (1.0 + mx.erf(x / math.sqrt(2.0))),
    "gelu_10": lambda x: mx.clip(x * 0.5 * (1.0 + mx.erf(x / math.sqrt(2.0))), -10, 10),
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_python_tanh": _gelu_tanh,
    "gelu_fast": lambda x: 0.5 * x * (1.0 + mx.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "gelu_accurate": lambda x: 0.5 * x * (1 + mx.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * mx.power(x, 3)))),
    "quick_gelu": lambda x: x * mx.sigmoid(1.702 * x),
    "relu": lambda x: mx.maximum(x, 0),
    "relu2": lambda x: mx.square(mx.maximum(x, 0)),
    "relu6": lambda x: mx.clip(x, 0, 6),
    "leaky_relu": lambda x: mx.where(x >= 0, x, 0.01 * x),
    "sigmoid": mx.sigmoid,
    "silu": lambda x: x * mx.sigmoid(x),
    "swish": lambda x: x * mx.sigmoid(x),
    "tanh": mx.tanh,
    "linear": lambda x: x,
    "mish": lambda x: x * mx.tanh(mx.logaddexp(x, 0)),
    "hardswish": lambda x: x * mx.clip(x + 3, 0, 6) / 6,
}


class _ClassInstantier(dict):
    """ACT2FN: `ACT2FN[name]` is a new activation module, as in transformers; a name without a stand-in raises."""

    def __getitem__(self, key):
        if key not in self:
            raise KeyError(f"activation {key!r} has no MLX stand-in in torch2mlx's transformers hub "
                           f"(known: {', '.join(sorted(self))})")
        return _Activation(dict.__getitem__(self, key), key)


ACT2CLS = dict(_ACTIVATIONS)
ACT2FN = _ClassInstantier(_ACTIVATIONS)


def get_activation(activation_string):
    return ACT2FN[activation_string]


class QuickGELUActivation(_Activation):
    """transformers.activations.QuickGELUActivation: x * sigmoid(1.702 x)."""

    def __init__(self):
        super().__init__(_ACTIVATIONS["quick_gelu"], "quick_gelu")


# transformers.activations' module-level instances (`from ..activations import gelu`)
gelu, gelu_new, gelu_fast, gelu_python, gelu_pytorch_tanh, quick_gelu, silu = (
    ACT2FN[n] for n in ("gelu", "gelu_new", "gelu_fast", "gelu_python", "gelu_pytorch_tanh", "quick_gelu", "silu"))


# ---------------------------------------------------------------- modules (modeling_utils, modeling_layers, generation)

_ATTENTION = ("eager", "sdpa")  # sdpa computes what eager computes; both run the modeling file's eager function


class PreTrainedModel(nn.Module):
    """transformers' PreTrainedModel as an MLX module: holds the config, runs the modeling file's eager attention.

    Not provided: from_pretrained / save_pretrained (build from a config, then `torch2mlx.load_torch_weights`),
    generate, resize_token_embeddings, gradient checkpointing, hooks. Weights are not initialised by
    `_init_weights` (post_init leaves MLX's initial values): load a checkpoint before use.
    """

    config_class = None
    base_model_prefix = ""
    main_input_name = "input_ids"
    _no_split_modules = None
    _tied_weights_keys = None
    supports_gradient_checkpointing = False

    def __init__(self, config, *inputs, **kwargs):
        super().__init__()
        implementation = getattr(config, "_attn_implementation", None)
        if implementation not in (None, *_ATTENTION):
            raise HubNotSupported(f"attention implementation {implementation!r}: the MLX stand-ins run 'eager' only")
        if implementation != "eager":
            config._attn_implementation = "eager"  # transformers sets it on the config too (sdpa by default)
        self.config = config
        self.name_or_path = getattr(config, "name_or_path", "")

    def post_init(self):
        """transformers initialises weights here (`_init_weights`); the MLX model keeps MLX's initial values."""

    @property
    def dtype(self):
        for _, value in _leaves(self.parameters()):
            if mx.issubdtype(value.dtype, mx.floating):
                return value.dtype
        return mx.float32

    def warn_if_padding_and_no_attention_mask(self, input_ids, attention_mask):
        """transformers warns once when the first or last input id is the pad token and no mask is given."""
        pad = getattr(self.config, "pad_token_id", None)
        if attention_mask is not None or pad is None or input_ids is None:
            return
        if bool(mx.any(input_ids[:, mx.array([-1, 0])] == pad).item()):
            import warnings

            warnings.warn("We strongly recommend passing in an `attention_mask` since your input_ids may be padded.",
                          stacklevel=2)

    def get_input_embeddings(self):
        base = getattr(self, self.base_model_prefix, self) if self.base_model_prefix else self
        if base is not self:
            return base.get_input_embeddings()
        raise HubNotSupported(f"{type(self).__name__}.get_input_embeddings")


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}{k}.")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _leaves(v, f"{prefix}{i}.")
    else:
        yield prefix[:-1], tree


class GradientCheckpointingLayer(nn.Module):
    """A layer that transformers may recompute in the backward pass (memory, not math): a plain MLX module here."""

    gradient_checkpointing = False


def _base_model(head, config):
    """AutoModel.from_config(config) for a head defined in a converted modeling file: the base model class that
    transformers' MODEL_MAPPING_NAMES names for this config type, taken from the head's own (converted) module."""
    import sys

    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    name = MODEL_MAPPING_NAMES.get(getattr(config, "model_type", None))
    cls = getattr(sys.modules[type(head).__module__], name, None) if isinstance(name, str) else None
    if cls is None:
        raise HubNotSupported(f"AutoModel.from_config for {type(config).__name__}: no base model class in "
                              f"{type(head).__module__}")
    return cls(config)


def _no_loss(**targets):
    if any(v is not None for v in targets.values()):
        raise HubNotSupported("losses (labels=...): transformers' loss functions need torch")


class GenericForSequenceClassification:
    """transformers.modeling_layers.GenericForSequenceClassification: the last non-padding token's logits."""

    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        setattr(self, self.base_model_prefix, _base_model(self, config))
        self.score = nn.Linear(config.get_text_config().hidden_size, self.num_labels, bias=False)
        self.post_init()

    def __call__(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                 inputs_embeds=None, labels=None, use_cache=None, **kwargs):
        return _tuple_if_asked(self, kwargs, lambda: self._forward(input_ids, attention_mask, position_ids,
                                                                   past_key_values, inputs_embeds, labels, use_cache, kwargs))

    def _forward(self, input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, labels, use_cache, kwargs):
        _no_loss(labels=labels)
        out = getattr(self, self.base_model_prefix)(input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                                    past_key_values=past_key_values, inputs_embeds=inputs_embeds,
                                                    use_cache=use_cache, **kwargs)
        logits = self.score(out.last_hidden_state)
        batch_size = (input_ids if input_ids is not None else inputs_embeds).shape[0]
        pad = self.config.get_text_config().pad_token_id
        if pad is None and batch_size != 1:
            raise ValueError("Cannot handle batch sizes > 1 if no padding token is defined.")
        if pad is None or input_ids is None:
            last = mx.full((batch_size,), logits.shape[1] - 1)
        else:
            positions = mx.arange(input_ids.shape[-1], dtype=mx.int32)
            last = mx.argmax(positions * (input_ids != pad).astype(mx.int32), axis=-1)
        pooled = logits[mx.arange(batch_size), last]
        return _output("SequenceClassifierOutputWithPast")(
            loss=None, logits=pooled, past_key_values=out.past_key_values, hidden_states=out.hidden_states,
            attentions=out.attentions)


class GenericForQuestionAnswering:
    """transformers.modeling_layers.GenericForQuestionAnswering: start and end logits."""

    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        setattr(self, self.base_model_prefix, _base_model(self, config))
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def __call__(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                 inputs_embeds=None, start_positions=None, end_positions=None, **kwargs):
        def forward():
            _no_loss(start_positions=start_positions, end_positions=end_positions)
            out = getattr(self, self.base_model_prefix)(input_ids, attention_mask=attention_mask,
                                                        position_ids=position_ids, past_key_values=past_key_values,
                                                        inputs_embeds=inputs_embeds, **kwargs)
            logits = self.qa_outputs(out.last_hidden_state)
            return _output("QuestionAnsweringModelOutput")(
                loss=None, start_logits=logits[..., 0], end_logits=logits[..., 1], hidden_states=out.hidden_states,
                attentions=out.attentions)

        return _tuple_if_asked(self, kwargs, forward)


class GenericForTokenClassification:
    """transformers.modeling_layers.GenericForTokenClassification: dropout, then per-token logits."""

    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        setattr(self, self.base_model_prefix, _base_model(self, config))
        if getattr(config, "classifier_dropout", None) is not None:
            dropout = config.classifier_dropout
        elif getattr(config, "hidden_dropout", None) is not None:
            dropout = config.hidden_dropout
        else:
            dropout = 0.1
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(config.get_text_config().hidden_size, config.num_labels,
                               bias=getattr(config, "token_classification_bias", True))
        self.post_init()

    def __call__(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                 inputs_embeds=None, labels=None, use_cache=None, **kwargs):
        def forward():
            _no_loss(labels=labels)
            out = getattr(self, self.base_model_prefix)(input_ids, attention_mask=attention_mask,
                                                        position_ids=position_ids, past_key_values=past_key_values,
                                                        inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs)
            logits = self.score(self.dropout(out.last_hidden_state))
            return _output("TokenClassifierOutput")(loss=None, logits=logits, hidden_states=out.hidden_states,
                                                    attentions=out.attentions)

        return _tuple_if_asked(self, kwargs, forward)


def _tuple_if_asked(model, kwargs, forward):
    """transformers' can_return_tuple: `return_dict=False` (argument, else config) gives output.to_tuple()."""
    return_dict = kwargs.pop("return_dict", None)
    if return_dict is None:
        return_dict = getattr(model.config, "return_dict", True)
    output = forward()
    return output if return_dict else output.to_tuple()


def _output(name):
    return _output_class(name)


class GenerationMixin:
    """transformers' generation mixin: `generate()` is not provided by the MLX stand-ins."""

    def generate(self, *args, **kwargs):
        raise HubNotSupported("generate(): write the decoding loop over the model's __call__")


class _AttentionInterface:
    """ALL_ATTENTION_FUNCTIONS: the modeling file's own eager function; other implementations raise."""

    def get_interface(self, attn_implementation, default):
        if attn_implementation in (None, *_ATTENTION):
            return default
        raise HubNotSupported(f"attention implementation {attn_implementation!r}")

    def __getitem__(self, key):
        raise HubNotSupported(f"attention implementation {key!r}: only the modeling file's eager function")

    def __contains__(self, key):
        return False


ALL_ATTENTION_FUNCTIONS = _AttentionInterface()


def slice_logits_to_keep(hidden_states, logits_to_keep):
    """transformers.modeling_utils.slice_logits_to_keep for an int (0: keep all; n: the last n positions)."""
    if isinstance(logits_to_keep, int):
        return hidden_states[:, -logits_to_keep:, :] if logits_to_keep else hidden_states
    raise HubNotSupported("logits_to_keep given as an array")


def apply_chunking_to_forward(forward_fn, chunk_size, chunk_dim, *input_tensors):
    """transformers.pytorch_utils.apply_chunking_to_forward: chunks compute the same values as one call."""
    if chunk_size > 0:
        shape = input_tensors[0].shape[chunk_dim]
        if shape % chunk_size != 0:
            raise ValueError(f"The dimension to be chunked {shape} has to be a multiple of the chunk size {chunk_size}")
        count = shape // chunk_size
        chunks = zip(*(mx.split(t, count, axis=chunk_dim) for t in input_tensors))
        return mx.concatenate([forward_fn(*c) for c in chunks], axis=chunk_dim)
    return forward_fn(*input_tensors)


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D (GPT-2): a linear layer whose weight is stored (in, out): x @ W + b."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.nf = nf
        self.weight = mx.random.normal((nx, nf)) * 0.02
        self.bias = mx.zeros((nf,))

    def __call__(self, x):
        return mx.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], self.nf)


class FlashAttentionKwargs(dict):
    """transformers' TypedDict of flash-attention keyword arguments: annotations only (`Unpack[...]`)."""


class OutputRecorder:
    """transformers.utils.output_capturing.OutputRecorder: what `_can_record_outputs` would record with torch hooks
    (kept as data; capture_outputs here refuses to record)."""

    def __init__(self, target_class=None, index=0, layer_name=None, class_name=None):
        self.target_class, self.index, self.layer_name, self.class_name = target_class, index, layer_name, class_name


def torch_compilable_check(cond, msg, error_type=ValueError):
    """transformers' torch._check wrapper: raise `error_type(msg)` unless `cond` (every element of an array) holds."""
    import os

    if os.getenv("TRANSFORMERS_DISABLE_TORCH_CHECK", "0") == "1":
        return
    if callable(cond):
        cond = cond()
    holds = bool(mx.all(cond).item()) if isinstance(cond, mx.array) else bool(cond)
    if not holds:
        raise error_type(msg() if callable(msg) else msg)


def dynamic_rope_update(rope_forward):
    """transformers.modeling_rope_utils.dynamic_rope_update: nothing to update for the static rope types; the
    dynamic and longrope frequency updates raise."""

    @wraps(rope_forward)
    def wrapper(self, x, position_ids, layer_type=None):
        rope_type = self.rope_type if layer_type is None else self.rope_type[layer_type]
        if "dynamic" in rope_type or rope_type == "longrope":
            raise HubNotSupported(f"rope type {rope_type!r} (frequencies updated with the sequence length)")
        kwargs = {"layer_type": layer_type} if layer_type is not None else {}
        return rope_forward(self, x, position_ids, **kwargs)

    return wrapper


class _RopeInitFunctions(dict):
    """ROPE_INIT_FUNCTIONS: the scaled rope types (linear, dynamic, yarn, longrope, llama3) are torch code: they raise."""

    def __getitem__(self, key):
        raise HubNotSupported(f"rope type {key!r}: only the modeling file's default rope")

    def __contains__(self, key):
        return False


ROPE_INIT_FUNCTIONS = _RopeInitFunctions()


def compile_compatible_method_lru_cache(*lru_args, **lru_kwargs):
    """transformers.pytorch_utils.compile_compatible_method_lru_cache: functools.lru_cache (nothing compiles here)."""
    return functools.lru_cache(*lru_args, **lru_kwargs)


# ---------------------------------------------------------------- decorators

def auto_docstring(obj=None, **kwargs):
    """transformers.utils.auto_docstring writes docstrings (from `forward`'s name, which the conversion renames to
    `__call__`): the object itself, with or without arguments."""
    if obj is None:
        return lambda inner: inner
    return obj


def use_kernel_forward_from_hub(layer_name: str):
    """transformers swaps in hub kernels only when `kernels` is installed and asked for: the forward is the file's."""
    return lambda cls: cls


def use_kernel_func_from_hub(func_name: str):
    return lambda func: func


def use_kernelized_func(*funcs):
    return lambda cls: cls


# transformers' other experts implementations are kernels for the same computation as the class's own forward
_EXPERTS = (None, "eager", "batched_mm", "grouped_mm")


def use_experts_implementation(experts_class=None, *, experts_interface=None, is_concatenated=True, is_transposed=False,
                               has_bias=False, has_gate=True, has_post_expert_norm=False):
    """transformers.integrations.use_experts_implementation: transformers dispatches the experts' forward to the
    implementation `config._experts_implementation` names (the class's own forward for "eager"); the stand-in runs
    the class's own forward and sets the attributes transformers sets, and raises for an implementation it lacks."""

    def wrapper(cls):
        original_init = cls.__init__

        @wraps(original_init)
        def __init__(self, config, *args, **kwargs):
            original_init(self, config, *args, **kwargs)
            implementation = getattr(config, "_experts_implementation", None)
            if implementation not in _EXPERTS:
                raise HubNotSupported(f"experts implementation {implementation!r}: the MLX stand-ins run the "
                                      "experts class's own forward")
            self.config = config
            self.has_gate, self.has_bias, self.has_post_expert_norm = has_gate, has_bias, has_post_expert_norm
            self.is_transposed, self.is_concatenated = is_transposed, is_concatenated
            self._is_expert_parallel = False

        cls.__init__ = __init__
        return cls

    return wrapper(experts_class) if experts_class is not None else wrapper


def capture_outputs(func=None, *, tie_last_hidden_states=True):
    """transformers.utils.output_capturing.capture_outputs without hooks: asking for hidden states or attentions
    (argument or config) raises; `return_dict=False` gives the tuple, as in transformers."""

    def wrapped_fn(func):
        @wraps(func)
        def wrapper(self, *args, **kwargs):
            return_dict = kwargs.pop("return_dict", getattr(self.config, "return_dict", True))
            for key in ("output_attentions", "output_hidden_states"):
                if kwargs.get(key, getattr(self.config, key, False)):
                    raise HubNotSupported(f"{key}: transformers records them with torch hooks")
            outputs = func(self, *args, **kwargs)
            if return_dict is False:
                outputs = outputs.to_tuple()
            return outputs

        return wrapper

    return wrapped_fn(func) if func is not None else wrapped_fn


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def maybe_autocast(device_type: str, dtype=None, enabled: bool = True, cache_enabled=None):
    """transformers.utils.generic.maybe_autocast: nothing when disabled (rotary embeddings); autocast raises."""
    if enabled and device_type != "meta":
        raise HubNotSupported("maybe_autocast(enabled=True): MLX has no autocast")
    return _NullContext()


# ---------------------------------------------------------------- caches (cache_utils)

class Cache:
    """transformers' key/value cache base."""

    def __init__(self, *args, **kwargs):
        self.keys: list = []
        self.values: list = []
        self.seen: list = []
        self.windows: list = []

    def update(self, key_states, value_states, layer_idx: int, cache_kwargs=None):
        while len(self.keys) <= layer_idx:
            self.keys.append(None)
            self.values.append(None)
            self.seen.append(0)
            self.windows.append(None)
        if self.keys[layer_idx] is not None:
            if self.windows[layer_idx] is not None:
                raise HubNotSupported("a sliding-window cache filled before: reuse is not provided")
            key_states = mx.concatenate([self.keys[layer_idx], key_states], axis=-2)
            value_states = mx.concatenate([self.values[layer_idx], value_states], axis=-2)
        self.seen[layer_idx] += key_states.shape[-2] - (self.keys[layer_idx].shape[-2] if self.keys[layer_idx] is not None else 0)
        window = self.windows[layer_idx]
        self.keys[layer_idx] = key_states if window is None else key_states[..., -(window - 1):, :]
        self.values[layer_idx] = value_states if window is None else value_states[..., -(window - 1):, :]
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen[layer_idx] if layer_idx < len(self.seen) else 0

    @property
    def layers(self) -> list:
        """transformers' per-layer caches: `cache.layers[i].keys` / `.values` are the keys and values cached so far
        (what `update` returned last for layer i), as encoder-decoder attention reads them back (gpt2, whisper)."""
        return [_CacheLayer(self, i) for i in range(len(self.keys))]

    def __len__(self) -> int:
        return len(self.keys)


class _CacheLayer:
    def __init__(self, cache: Cache, index: int):
        self._cache, self._index = cache, index

    @property
    def keys(self):
        return self._cache.keys[self._index]

    @property
    def values(self):
        return self._cache.values[self._index]


class DynamicCache(Cache):
    """transformers.cache_utils.DynamicCache: keys and values grow along the sequence axis; sliding-window layers
    keep the last `sliding_window - 1` positions (filling once is provided; reusing such a layer raises)."""

    def __init__(self, ddp_cache_data=None, config=None, offloading: bool = False, offload_only_non_sliding: bool = False):
        super().__init__()
        if ddp_cache_data is not None or offloading:
            raise HubNotSupported("DynamicCache from data or with offloading")
        if config is not None:
            text = config.get_text_config(decoder=True)
            count = getattr(text, "num_hidden_layers", 0)
            window = getattr(text, "sliding_window", None)
            types = getattr(text, "layer_types", None) or [
                "sliding_attention" if window is not None else "full_attention"] * count
            for kind in types:
                self.keys.append(None)
                self.values.append(None)
                self.seen.append(0)
                self.windows.append(window if kind in ("sliding_attention", "chunked_attention") else None)
                if kind not in ("full_attention", "sliding_attention"):
                    raise HubNotSupported(f"cache layer type {kind!r}")


class EncoderDecoderCache(Cache):
    def __init__(self, self_attention_cache=None, cross_attention_cache=None, *args, **kwargs):
        super().__init__()
        self.self_attention_cache = self_attention_cache if self_attention_cache is not None else DynamicCache()
        self.cross_attention_cache = cross_attention_cache if cross_attention_cache is not None else DynamicCache()
        self.is_updated = {}

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.self_attention_cache.get_seq_length(layer_idx)


# ---------------------------------------------------------------- masks (masking_utils), eager attention's additive masks

def _positions(inputs_embeds, attention_mask, past_key_values, position_ids):
    q_len = inputs_embeds.shape[1]
    past = past_key_values.get_seq_length() if past_key_values is not None else 0
    if position_ids is not None and attention_mask is None and past_key_values is None:  # transformers' packing test
        expected = mx.arange(past, past + q_len)
        ids = position_ids.reshape(-1, position_ids.shape[-1])
        if ids.shape[-1] != q_len or not bool(mx.all(ids == expected[None]).item()):
            raise HubNotSupported("position_ids other than past + arange(length) (packed sequences)")
    return past, q_len


def _additive(allowed, dtype):
    return mx.where(allowed, mx.array(0, dtype=dtype), mx.array(mx.finfo(dtype).min, dtype=dtype))


def _padding(allowed, attention_mask, kv_len):
    if attention_mask is None:
        return allowed
    if attention_mask.ndim != 2:
        raise HubNotSupported("a prepared (not 2-D) attention mask")
    if attention_mask.shape[-1] != kv_len:
        raise HubNotSupported(f"attention_mask of length {attention_mask.shape[-1]} for {kv_len} key positions")
    return allowed & attention_mask.astype(mx.bool_)[:, None, None, :]


def _causal(config, inputs_embeds, attention_mask, past_key_values, position_ids, window, or_mask_function,
            and_mask_function, block_sequence_ids):
    if or_mask_function is not None or and_mask_function is not None or block_sequence_ids is not None:
        raise HubNotSupported("custom or block mask functions")
    past, q_len = _positions(inputs_embeds, attention_mask, past_key_values, position_ids)
    kv_len = past + q_len
    q_idx = mx.arange(past, kv_len)[:, None]
    kv_idx = mx.arange(kv_len)[None, :]
    allowed = kv_idx <= q_idx
    if window is not None:
        allowed = allowed & (kv_idx > q_idx - window)
    allowed = _padding(allowed[None, None], attention_mask, kv_len)
    allowed = mx.broadcast_to(allowed, (inputs_embeds.shape[0], 1, q_len, kv_len))
    return _additive(allowed, inputs_embeds.dtype)


def create_causal_mask(config, inputs_embeds, attention_mask, past_key_values, position_ids=None, or_mask_function=None,
                       and_mask_function=None, block_sequence_ids=None, layer_idx=None, allow_is_causal_skip=True):
    """The eager causal mask: (batch, 1, query, key), 0 where attended, the dtype's minimum elsewhere."""
    return _causal(config, inputs_embeds, attention_mask, past_key_values, position_ids, None, or_mask_function,
                   and_mask_function, block_sequence_ids)


def create_sliding_window_causal_mask(config, inputs_embeds, attention_mask, past_key_values, position_ids=None,
                                      or_mask_function=None, and_mask_function=None, block_sequence_ids=None,
                                      layer_idx=None, allow_is_causal_skip=True):
    """The eager sliding-window causal mask: a key position attends when query - window < key <= query."""
    window = getattr(config, "sliding_window", None)
    if window is None:
        raise HubNotSupported("a sliding-window mask without config.sliding_window")
    return _causal(config, inputs_embeds, attention_mask, past_key_values, position_ids, window, or_mask_function,
                   and_mask_function, block_sequence_ids)


def create_bidirectional_mask(config, inputs_embeds, attention_mask, encoder_hidden_states=None, past_key_values=None,
                              or_mask_function=None, and_mask_function=None, allow_is_bidirectional_skip=True, **kwargs):
    """The eager bidirectional mask: None without padding (nothing masked), else (batch, 1, query, key) additive."""
    if or_mask_function is not None or and_mask_function is not None:
        raise HubNotSupported("custom mask functions")
    if attention_mask is None:
        return None
    kv_len = (encoder_hidden_states if encoder_hidden_states is not None else inputs_embeds).shape[1]
    allowed = mx.ones((1, 1, inputs_embeds.shape[1], kv_len), dtype=mx.bool_)
    allowed = _padding(allowed, attention_mask, kv_len)
    return _additive(mx.broadcast_to(allowed, (inputs_embeds.shape[0], 1, inputs_embeds.shape[1], kv_len)),
                     inputs_embeds.dtype)


# ---------------------------------------------------------------- output classes (modeling_outputs)

@functools.lru_cache(maxsize=1)
def _output_fields() -> dict:
    """{class name: [field, ...]} of transformers.modeling_outputs, read from its source (it imports torch)."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return {}
    source = Path(list(spec.submodule_search_locations)[0]) / "modeling_outputs.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    classes = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            fields = [s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            classes[node.name] = (bases, fields)
    return classes


@functools.lru_cache(maxsize=None)
def _output_class(name: str):
    bases, fields = _output_fields()[name]
    inherited: list = []
    for base in bases:
        if base != "ModelOutput":
            inherited = [f for f in _output_class(base).__dataclass_fields__]
    own = inherited + [f for f in fields if f not in inherited]
    cls = make_dataclass(name, [(f, Optional[object], None) for f in own], bases=(ModelOutput,))
    cls.__module__ = __name__
    return cls


def output_class_names() -> frozenset:
    return frozenset(_output_fields())


def __getattr__(name: str):
    if name in _output_fields():
        return _output_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
