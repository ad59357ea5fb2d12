"""Model hubs whose machinery a converted file may take from MLX stand-ins: `torch2mlx convert --hub transformers`.

A transformers modeling file (`models/<arch>/modeling_<arch>.py`) derives its models from `PreTrainedModel`
and calls `ACT2FN`, the caches, the mask builders, the output dataclasses ..., all defined in modules of
transformers that import torch. Converting the file alone leaves those imports, so the result cannot import
without torch. With the option (a user's explicit choice, as a user porting one model would make), the names
that `torch2mlx.hub.transformers` provides are imported from there instead, and its module classes
(`PreTrainedModel`, `GradientCheckpointingLayer`) count as nn.Module bases for the conversion (forward ->
__call__, buffers, ...), as an nn.Module class imported from another file of the project does. A name imported
from one of transformers' torch modules that has no stand-in is flagged (`hub-transformers`) and its import
left as written. Names from transformers' pure-Python modules (configuration classes, `utils`) are kept.

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

# transformers modules (relative to the package) that import torch: each name imported from them needs a stand-in
TORCH_MODULES = frozenset({
    "activations", "cache_utils", "masking_utils", "modeling_layers", "modeling_outputs", "modeling_utils",
    "pytorch_utils", "initialization", "modeling_attn_mask_utils", "modeling_flash_attention_utils", "integrations",
    "generation", "integrations.deepspeed", "modeling_rope_utils.torch", "loss", "loss.loss_utils",
})
# what torch2mlx.hub.transformers provides, by the transformers module it stands in for ("": the package itself);
# also names of pure-Python modules whose transformers version needs torch when called (hooks, autocast)
PROVIDED = {
    "activations": frozenset({"ACT2FN", "ACT2CLS", "get_activation"}),
    "cache_utils": frozenset({"Cache", "DynamicCache", "EncoderDecoderCache"}),
    "masking_utils": frozenset({"create_causal_mask", "create_sliding_window_causal_mask", "create_bidirectional_mask"}),
    "modeling_layers": frozenset({"GradientCheckpointingLayer", "GenericForSequenceClassification",
                                  "GenericForQuestionAnswering", "GenericForTokenClassification"}),
    "modeling_utils": frozenset({"PreTrainedModel", "ALL_ATTENTION_FUNCTIONS", "slice_logits_to_keep"}),
    "pytorch_utils": frozenset({"apply_chunking_to_forward", "Conv1D"}),
    "integrations": frozenset({"use_kernel_forward_from_hub", "use_kernel_func_from_hub", "use_kernelized_func"}),
    "generation": frozenset({"GenerationMixin"}),
    "modeling_flash_attention_utils": frozenset({"FlashAttentionKwargs"}),
    "utils.output_capturing": frozenset({"capture_outputs"}),
    "utils.generic": frozenset({"maybe_autocast"}),
    "utils": frozenset({"auto_docstring"}),
    "utils.auto_docstring": frozenset({"auto_docstring"}),
    "": frozenset({"initialization"}),
}
MODULE_CLASSES = frozenset({"PreTrainedModel", "GradientCheckpointingLayer", "Conv1D"})


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


def provided(module: str) -> frozenset:
    return output_classes() if module == "modeling_outputs" else PROVIDED.get(module, frozenset())


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
    mapped: list = field(default_factory=list)   # (name, asname) from the stand-ins
    flagged: list = field(default_factory=list)  # (name, asname) from a torch module, no stand-in


@dataclass
class Plan:
    """What the hub option changes in one file: its hub imports, and the local names of module classes."""

    imports: list
    module_classes: frozenset

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
    found, classes = [], set()
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or any(a.name == "*" for a in node.names):
            continue
        target = absolute_import(module, node, is_package)
        if target != "transformers" and not target.startswith("transformers."):
            continue
        inner = target[len("transformers."):] if target != "transformers" else ""
        if inner.startswith("models."):
            continue  # another architecture's modeling file: converted itself, or the user's choice
        entry = _Import(node.level, node.module or "", node.lineno, node.col_offset + 1)
        torch_module = inner in TORCH_MODULES or inner.split(".")[0] in TORCH_MODULES
        for a in node.names:
            pair = (a.name, a.asname)
            if a.name in provided(inner):
                entry.mapped.append(pair)
                if a.name in MODULE_CLASSES:
                    classes.add(a.asname or a.name)
            elif torch_module or (inner == "" and a.name in TORCH_MODULES):
                entry.flagged.append(pair)
        if entry.mapped or entry.flagged:
            found.append(entry)
    return Plan(found, frozenset(classes)) if found else None
