"""`TensorDataset` + `DataLoader` over in-memory tensors -> a small MLX batch iterator (id `data-loader`).

What it does
    `TensorDataset(x, y)` becomes `ArrayDataset(x, y)` and `DataLoader(ds, batch_size=..,
    shuffle=.., drop_last=..)` over such a dataset becomes `ArrayLoader(ds, ...)`; both classes
    are written once after the imports. Batches are lists `[x[i:j], y[i:j]]` as torch's
    default collate gives, `len(loader)` and `len(loader.dataset)` work as in torch.
    num_workers / pin_memory / persistent_workers are dropped (they only change speed).
Why
    torch.utils.data is torch; an in-memory loader is a few lines of indexing in MLX.
Left in place (flagged) when
    the dataset is not a TensorDataset built in this file (a name bound to one, or
    a subscript of a dict literal of them), or the loader uses a sampler, collate_fn, generator or
    other arguments. The shuffle order comes from mx.random, so
    it differs from torch's even under the same seed (info diagnostic).
    Where the file uses the name ArrayDataset or ArrayLoader itself, the generated class gets a fresh
    one (`ArrayDataset_1`).
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.patterns import is_name
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_statements

RULE_ID = "data-loader"
DATASET = "torch.utils.data.TensorDataset"
LOADER = "torch.utils.data.DataLoader"
_KEPT = ("batch_size", "shuffle", "drop_last")
_DROPPED = ("num_workers", "pin_memory", "persistent_workers", "prefetch_factor", "pin_memory_device")

_CLASSES = ("ArrayDataset", "ArrayLoader")
HELPERS = '''
class ArrayDataset:
    """In-memory arrays of one length, indexed together (a TensorDataset)."""

    def __init__(self, *arrays):
        self.arrays = arrays

    def __len__(self):
        return self.arrays[0].shape[0]

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)


class ArrayLoader:
    """Batches of an ArrayDataset (a DataLoader): shuffled anew on every pass if asked."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = mx.random.permutation(n) if self.shuffle else mx.arange(n)
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield [a[index] for a in self.dataset.arrays]
'''


class DataLoaders(Transform):
    id = RULE_ID
    description = "TensorDataset + DataLoader over in-memory tensors -> ArrayDataset + ArrayLoader"

    def __init__(self) -> None:
        self.datasets: set = set()
        self.dataset_dicts: set = set()  # names of dicts whose values are all TensorDatasets of this file
        self.dataset_calls: set = set()

    def applies_to(self, text: str) -> bool:
        return "TensorDataset" in text

    @staticmethod
    def _helpers(rw) -> dict:
        """The two classes, after the imports once per file (written together); each one's name in the file (a
        fresh one where the file uses it)."""
        parsed: list = []

        def statement(i: int) -> list:
            if not parsed:
                parsed.extend(mlx_statements(rw, HELPERS.lstrip()))
            return parsed[i:i + 1]

        return {name: rw.helper(name, lambda i=i: statement(i)) for i, name in enumerate(_CLASSES)}

    def _drop(self, rw, node) -> None:
        rw.drop_flags(node)

    def leave_Call(self, rw, original, updated):
        qual = rw.qualified_name(original.func)
        if qual == DATASET:
            if any(a.keyword is not None or a.star for a in updated.args):
                return updated
            helper = self._helpers(rw)["ArrayDataset"]
            self._drop(rw, original)
            self.dataset_calls.add(id(original))
            rw.count_conversion()
            return updated.with_changes(func=cst.Name(helper))
        if qual == LOADER:
            return self._loader(rw, original, updated)
        return updated

    def leave_Assign(self, rw, original, updated):
        value = original.value
        # a dict of TensorDatasets (`{"train": TensorDataset(...), "val": ...}`, the transfer-learning tutorial's)
        # is subscripted for a dataset: `DataLoader(datasets[phase], ...)`
        held = (id(value) in self.dataset_calls or isinstance(value, cst.Dict) and value.elements and all(
            isinstance(e, cst.DictElement) and id(e.value) in self.dataset_calls for e in value.elements))
        if held:
            names = {t.target.value for t in original.targets if isinstance(t.target, cst.Name)}
            (self.datasets if id(value) in self.dataset_calls else self.dataset_dicts).update(names)
        return updated

    def _loader(self, rw, original, updated):
        args = list(updated.args)
        if not args or args[0].keyword is not None or any(a.star for a in args):
            return updated
        source = original.args[0].value
        in_dict = (isinstance(source, cst.Subscript) and isinstance(source.value, cst.Name) and source.value.value in self.dataset_dicts)
        if not (id(source) in self.dataset_calls or (isinstance(source, cst.Name) and source.value in self.datasets) or in_dict):
            return updated
        kept = [args[0]]
        names = ("dataset", "batch_size", "shuffle")
        for i, a in enumerate(args[1:], 1):
            key = a.keyword.value if a.keyword is not None else (names[i] if i < len(names) else None)
            if key in _DROPPED:
                continue
            if key not in _KEPT:
                rw.flag(original, RULE_ID, "unsupported-arg", f"DataLoader argument {key or code_of(a.value)} has no ArrayLoader equivalent; left as written")
                return updated
            kept.append(a if a.keyword is not None else a.with_changes(keyword=cst.Name(key), equal=cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))))
        kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        self._drop(rw, original)
        if any(a.keyword is not None and a.keyword.value == "shuffle" and not is_name(a.value, "False") for a in kept):
            rw.flag(original, RULE_ID, "needs-review", "shuffled with mx.random: the batch order differs from torch's", "info")
        rw.count_conversion()
        return updated.with_changes(func=cst.Name(self._helpers(rw)["ArrayLoader"]), args=kept)
