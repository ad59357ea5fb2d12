"""Model hubs whose machinery a converted file may take from MLX stand-ins: `torch2mlx convert --hub transformers`.

A transformers modeling file (`models/<arch>/modeling_<arch>.py`) derives its models from `PreTrainedModel`
and calls `ACT2FN`, the caches, the mask builders, the output dataclasses ..., all defined in modules of
transformers that import torch. Converting the file alone leaves those imports, so the result cannot import
without torch. With the option (a user's explicit choice, as a user porting one model would make), the names
that `torch2mlx.hub.transformers` provides are imported from there instead, and its module classes
(`PreTrainedModel`, `GradientCheckpointingLayer`) count as nn.Module bases for the conversion (forward ->
__call__, buffers, ...), as an nn.Module class imported from another file of the project does. Names of
transformers' pure-Python modules known to run without torch (`KEPT`: logging, typing, config decorators) and
the architecture's own modules (`.configuration_<arch>`) are kept; any other name imported from transformers is
flagged (`hub-transformers`) and its import left as written.

This module is the converter's side (no MLX, no transformers import); docs/transformers.md is the user's.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HUBS = ("transformers",)
RULE_ID = "hub-transformers"
STAND_INS = "torch2mlx.hub.transformers"

# what torch2mlx.hub.transformers provides, by the transformers module it stands in for ("": the package itself):
# names of modules that import torch, and names of pure-Python modules that need torch when called (hooks,
# autocast, torch._check, rope updates) or whose job depends on the method's name (auto_docstring reads `forward`)
PROVIDED = {
    "activations": frozenset({"ACT2FN", "ACT2CLS", "get_activation", "QuickGELUActivation", "gelu", "gelu_new", "gelu_fast", "gelu_python",
                              "gelu_pytorch_tanh", "quick_gelu", "silu"}),
    "cache_utils": frozenset({"Cache", "DynamicCache", "EncoderDecoderCache"}),
    "masking_utils": frozenset({"create_causal_mask", "create_sliding_window_causal_mask", "create_bidirectional_mask"}),
    "modeling_layers": frozenset({"GradientCheckpointingLayer", "GenericForSequenceClassification",
                                  "GenericForQuestionAnswering", "GenericForTokenClassification"}),
    "modeling_utils": frozenset({"PreTrainedModel", "ALL_ATTENTION_FUNCTIONS", "slice_logits_to_keep"}),
    "pytorch_utils": frozenset({"apply_chunking_to_forward", "Conv1D", "compile_compatible_method_lru_cache"}),
    "integrations": frozenset({"use_kernel_forward_from_hub", "use_kernel_func_from_hub", "use_kernelized_func",
                               "use_experts_implementation"}),
    "integrations.moe": frozenset({"use_experts_implementation"}),
    "generation": frozenset({"GenerationMixin"}),
    "modeling_flash_attention_utils": frozenset({"FlashAttentionKwargs"}),
    "modeling_rope_utils": frozenset({"dynamic_rope_update", "ROPE_INIT_FUNCTIONS"}),
    "utils.output_capturing": frozenset({"capture_outputs", "OutputRecorder"}),
    "utils.generic": frozenset({"maybe_autocast"}),
    "utils": frozenset({"auto_docstring", "torch_compilable_check"}),
    "utils.import_utils": frozenset({"torch_compilable_check"}),
    "utils.auto_docstring": frozenset({"auto_docstring"}),
    "": frozenset({"initialization"}),
}
# names of transformers' pure-Python modules kept as imported: they import and run without torch, and do the same
# for MLX arrays (configuration, logging, typing, availability probes, config-default and return_dict decorators)
KEPT = {
    "utils": frozenset({
        "TransformersKwargs", "can_return_tuple", "logging", "ModelOutput", "torch_int", "is_torchdynamo_compiling",
        "is_torchdynamo_exporting", "DUMMY_INPUTS", "DUMMY_MASK", "requires_backends", "add_start_docstrings",
        "add_start_docstrings_to_model_forward", "replace_return_docstrings", "OptionalDependencyNotAvailable",
        *(f"is_{lib}_available" for lib in ("accelerate", "peft", "torch", "scipy", "kernels", "ninja", "torch_cuda",
                                             "torchvision", "timm", "bitsandbytes", "vision", "natten", "xlstm",
                                             "torch_flex_attn")),
    }),
    "utils.generic": frozenset({"merge_with_config_defaults", "can_return_tuple", "TransformersKwargs", "ModelOutput",
                                "is_flash_attention_requested", "get_max_seqlen", "accepts_precomputed_kwargs"}),
    "utils.import_utils": frozenset({"is_torchdynamo_compiling", "is_torchdynamo_exporting"}),
    "utils.deprecation": frozenset({"deprecate_kwarg"}),
    "file_utils": frozenset({"ModelOutput", "is_scipy_available", "requires_backends"}),
    "processing_utils": frozenset({"Unpack"}),
    "configuration_utils": frozenset({"PreTrainedConfig", "PretrainedConfig"}),
    "generation": frozenset({"GenerationConfig", "GenerationMode", "CompileConfig"}),
    "integrations.deepspeed": frozenset({"is_deepspeed_zero3_enabled"}),  # False: MLX runs no DeepSpeed
}
MODULE_CLASSES = frozenset({"PreTrainedModel", "GradientCheckpointingLayer", "Conv1D"})
# stand-ins the conversion knows facts of (value_facts.py: the attention interface, the caches' update)
_FACT_NAMES = frozenset({"ALL_ATTENTION_FUNCTIONS", "initialization", "Cache", "DynamicCache", "EncoderDecoderCache"})
_CACHES = frozenset({"Cache", "DynamicCache", "EncoderDecoderCache"})


@functools.lru_cache(maxsize=1)
def output_classes() -> frozenset:
    """The classes of the installed transformers.modeling_outputs (read, not imported: it imports torch)."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    source = Path(list(spec.submodule_search_locations)[0]) / "modeling_outputs.py"
    if not source.is_file():
        return frozenset()
    tree = ast.parse(source.read_text(encoding="utf-8"))
    return frozenset(n.name for n in tree.body if isinstance(n, ast.ClassDef))


@functools.lru_cache(maxsize=64)
def config_int_fields(inner: str) -> dict:
    """class name -> the fields annotated `int` of each `@strict` class of the installed transformers module `inner`
    (`models.bert.configuration_bert`; read, not imported). huggingface_hub's strict dataclasses check every field's
    type when the config is built and when a field is assigned, so such a field always holds an int."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return {}
    source = Path(list(spec.submodule_search_locations)[0]).joinpath(*inner.split(".")).with_suffix(".py")
    if not source.is_file():
        return {}
    found = {}
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if not isinstance(node, ast.ClassDef) or not any(
                isinstance(d, ast.Name) and d.id == "strict" or isinstance(d, ast.Call) and isinstance(d.func, ast.Name)
                and d.func.id == "strict" for d in node.decorator_list):
            continue
        fields = [s for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
        found[node.name] = frozenset(
            [s.target.id for s in fields if isinstance(s.annotation, ast.Name) and s.annotation.id == "int"]
            + [f"{s.target.id}?" for s in fields if _int_or_no_number(s.annotation)])
    return found


def _int_or_no_number(annotation) -> bool:
    """`int | list[int] | tuple[int, int] | None` (CLIP's image_size): an int, or a value on which `//`, `-`, `%`
    and `**` raise (a list, a tuple, None): the field's entry is `name?` (scalar_facts.is_int reads such operands)."""
    sides, todo = [], [annotation]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            todo += [node.left, node.right]
        else:
            sides.append(node)
    has_int = any(isinstance(n, ast.Name) and n.id == "int" for n in sides)
    others = all((isinstance(n, ast.Name) and n.id == "int") or (isinstance(n, ast.Constant) and n.value is None)
                 or (isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id in ("list", "tuple"))
                 for n in sides)
    return has_int and others and len(sides) > 1


def provided(module: str) -> frozenset:
    return output_classes() | {"ModelOutput"} if module == "modeling_outputs" else PROVIDED.get(module, frozenset())


def _file_module(path: str) -> str:
    """The dotted module of a transformers file: from its path (`.../transformers/models/bert/modeling_bert.py`),
    else taken to sit in `transformers/models/<its folder>/` as every modeling file does."""
    parts = Path(path).with_suffix("").parts
    if "transformers" in parts:
        at = len(parts) - 1 - parts[::-1].index("transformers")
        return ".".join(parts[at:])
    folder = parts[-2] if len(parts) > 1 else "model"
    return f"transformers.models.{folder}.{parts[-1] if parts else 'model'}"


@dataclass
class _Import:
    level: int
    module: str                      # as written (`modeling_utils`, `utils.generic`, '' for `from ... import x`)
    line: int
    column: int
    target: str = ""                 # the module resolved (`transformers.modeling_utils`)
    mapped: list = field(default_factory=list)   # (name, asname) from the stand-ins
    flagged: list = field(default_factory=list)  # (name, asname) from a torch module, no stand-in
    handled: set = field(default_factory=set)    # the names as imported, mapped or flagged (the rest is kept)


@dataclass
class Plan:
    """What the hub option changes in one file: its hub imports, and the local names of module classes."""

    imports: list
    module_classes: frozenset
    torch_aliases: dict = field(default_factory=dict)  # local name -> torch module it behaves as
    # local name -> the stand-in it names, for the facts that hold of the stand-ins: ALL_ATTENTION_FUNCTIONS'
    # `.get_interface(impl, f)` returns f or raises and `[impl]` raises (value_facts.py: only the modeling file's
    # eager function runs); `initialization` is transformers' (its copy_ too: transforms/init)
    names: dict = field(default_factory=dict)
    config_ints: dict = field(default_factory=dict)  # local name of a config class -> its fields always holding an int

    @property
    def hint(self) -> str:
        """What the plan adds to the file, in the words the transforms' text tests look for."""
        return "\nnn.Module nn.init\n"

    def apply(self, module_scope) -> None:
        """Before the pass: the stand-ins' module classes count as nn.Module classes imported from another project
        file; `from transformers import initialization as init` is torch.nn.init for the conversion (transformers'
        functions call torch.nn.init's on a tensor not loaded from a checkpoint: a model built from a config)."""
        module_scope.project_classes.update(self.module_classes)
        module_scope.hub_names = dict(self.names)
        module_scope.config_ints = dict(self.config_ints)
        for name, qual in self.torch_aliases.items():
            module_scope.imports[name] = qual
            module_scope.other.discard(name)
            module_scope.modules.discard(name)
        if self.torch_aliases:
            module_scope.hot_names = frozenset(module_scope.hot_names) | frozenset(self.torch_aliases)

    def rewrite(self, code: str, path: str) -> tuple:
        """The converted code with the hub imports taken from the stand-ins; the `hub-transformers` diagnostics."""
        from torch2mlx.hub.rewrite import rewrite_imports

        return rewrite_imports(code, path, self.imports, RULE_ID, STAND_INS)


def plan(hubs, tree: ast.Module, path: str, module_name: Optional[str] = None, is_package: bool = False) -> Optional[Plan]:
    """The hub imports of a file (module level), or None when the option is off or nothing is imported from a hub."""
    if "transformers" not in hubs:
        return None
    from torch2mlx.imports import absolute_import

    module = module_name if module_name and module_name.startswith("transformers.") else _file_module(path)
    found, classes, seen, aliases, names, configs = [], set(), False, {}, {}, {}
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or any(a.name == "*" for a in node.names):
            continue
        target = absolute_import(module, node, is_package)
        if target == STAND_INS:  # converted code converted again: the same facts, nothing to rewrite
            seen = True
            for a in node.names:
                if a.name in MODULE_CLASSES:
                    classes.add(a.asname or a.name)
                if a.name == "initialization":
                    aliases[a.asname or a.name] = "torch.nn.init"
                if a.name in _FACT_NAMES:
                    names[a.asname or a.name] = a.name
            continue
        if target != "transformers" and not target.startswith("transformers."):
            continue
        inner = target[len("transformers."):] if target != "transformers" else ""
        generation = inner.startswith("models.") and inner.rsplit(".", 1)[-1].startswith("generation_")
        if inner.startswith("models.") and not generation:
            if inner.rsplit(".", 1)[-1].startswith("configuration_"):  # the architecture's config classes
                fields = config_int_fields(inner)
                for a in node.names:
                    if a.name in fields:
                        configs[a.asname or a.name] = fields[a.name]
            continue  # an architecture's own files (configuration, other modeling files): converted or pure Python
        seen = True
        entry = _Import(node.level, node.module or "", node.lineno, node.col_offset + 1, target)
        for a in node.names:
            pair = (a.name, a.asname)
            entry.handled.add(a.name)
            if generation:  # `.generation_whisper`'s WhisperGenerationMixin: generation methods only, as the mixin
                if a.name.endswith("GenerationMixin"):
                    entry.mapped.append(("GenerationMixin", a.asname or a.name))
                else:
                    entry.flagged.append(pair)
            elif a.name in provided(inner):
                entry.mapped.append(pair)
                if a.name in MODULE_CLASSES:
                    classes.add(a.asname or a.name)
                if inner == "" and a.name == "initialization":
                    aliases[a.asname or a.name] = "torch.nn.init"
                if a.name in _FACT_NAMES and ((inner, a.name) in (("modeling_utils", "ALL_ATTENTION_FUNCTIONS"), ("", "initialization"))
                                              or (inner == "cache_utils" and a.name in _CACHES)):
                    names[a.asname or a.name] = a.name
            elif a.name not in KEPT.get(inner, ()):
                entry.flagged.append(pair)  # built on torch, or not known to run without it
            else:
                entry.handled.discard(a.name)
        if entry.mapped or entry.flagged:
            found.append(entry)
    return Plan(found, frozenset(classes), aliases, names, configs) if seen or configs else None
