"""Torch checkpoint files without torch: the local helpers that `torch.hub.load_state_dict_from_url` (and
`torch.utils.model_zoo.load_url`, the same function) become (rules/runtime_registrations.yaml; the re-export of
the name by a `try:` of torch imports, torchvision's `_internally_replaced_utils.py`, is the runtime-values
transform's).

**What it does**
- `torch_checkpoint_load(path)`: reads a file written by `torch.save` with the standard library and numpy: the
  zip format (`<archive>/data.pkl` + `<archive>/data/<key>`, torch >= 1.6, `byteorder` honoured) and the legacy
  pickle stream (magic number, protocol 1001, system info, the object, its storage keys, the storages). Tensors
  (`_rebuild_tensor`, `_v2`, `_v3`, parameters) become mx.arrays of the same dtype, shape and values (bfloat16 by
  its bits; strided views and storage offsets as torch rebuilds them; tied entries, one tensor under two keys,
  stay one array object). Only what a state_dict holds is unpickled (an allow-list, as torch's weights_only=True):
  any other global raises `pickle.UnpicklingError`.
- `hub_load_state_dict_from_url(...)`: torch's signature and steps (torch/hub.py): the cache directory
  `$TORCH_HOME/hub/checkpoints` (or `model_dir`), the download to a `.partial` file moved into place, the SHA-256
  prefix of `check_hash` (the hex digits after the last '-' of the file name), `file_name`, a legacy zip (one
  file inside) extracted next to it; `progress` writes a byte count to stderr instead of tqdm's bar.

**Exactness**: the arrays are torch's tensors bit for bit, in torch's layout (a convolution kernel stays
(O, I, *k)): `model.load_state_dict(sd)` on a converted model stays flagged, and `torch2mlx.load_torch_weights`
moves the axes. **Raises (never guesses)** for a `map_location` that is a function (torch calls it on every
storage), a dtype MLX lacks (complex128, float8), a storage view of torch < 0.4 and the tar format of torch < 0.4;
`torch.hub.set_dir` is torch's own state (a converted program reading it stays flagged).
"""

HELPERS = {
    "torch_checkpoint_load": r'''
def torch_checkpoint_load(path):
    """A file written by PyTorch's torch.save, read without torch: the saved object with each tensor as an
    mx.array of its dtype and values (a state_dict stays an OrderedDict in torch's layout: convolution kernels
    (O, I, *k)). Both of torch's formats: the zip file (data.pkl + data/<key>, torch >= 1.6) and the legacy
    pickle stream. Only the objects a state_dict holds are rebuilt (tensors, parameters, OrderedDict, plain
    Python values): anything else raises pickle.UnpicklingError, like torch.load(weights_only=True)."""
    import collections
    import io
    import pickle
    import zipfile

    import numpy  # imported here: a module using the helper does not import numpy until it reads a file

    # torch storage classes and dtypes -> (numpy dtype, MLX dtype); bfloat16 is read as its bits (uint16)
    kinds = {
        "float32": ("<f4", mx.float32), "float64": ("<f8", mx.float64), "float16": ("<f2", mx.float16),
        "bfloat16": ("<u2", mx.bfloat16), "int64": ("<i8", mx.int64), "int32": ("<i4", mx.int32),
        "int16": ("<i2", mx.int16), "int8": ("i1", mx.int8), "uint8": ("u1", mx.uint8), "bool": ("?", mx.bool_),
        "uint16": ("<u2", mx.uint16), "uint32": ("<u4", mx.uint32), "uint64": ("<u8", mx.uint64),
        "complex64": ("<c8", mx.complex64),
    }
    storages = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
                "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
                "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64"}

    class Dtype(str):
        pass

    class Storage:
        def __init__(self, raw, dtype):
            self.raw, self.dtype = raw, dtype  # raw: the storage's bytes (uint8); dtype None for an UntypedStorage

    class StorageType(str):
        pass

    made = {}  # one array per view of a storage: tied weights (one tensor under two keys) stay one object

    def rebuild(storage, offset, size, stride, dtype):
        if dry_run[0]:
            return None
        if dtype not in kinds:
            raise pickle.UnpicklingError(f"a tensor of dtype torch.{dtype}: MLX has no such dtype")
        key = (id(storage), offset, tuple(size), tuple(stride), dtype)
        if key in made:
            return made[key]
        np_dtype, mx_dtype = kinds[dtype]
        if big_endian:
            np_dtype = np_dtype.replace("<", ">")
        flat = storage.raw.view(np_dtype)
        if len(size) and min(size) == 0:
            values = numpy.zeros(size, dtype=np_dtype)
        else:
            itemsize = flat.itemsize
            values = numpy.lib.stride_tricks.as_strided(flat[offset:], shape=tuple(size),
                                                     strides=tuple(s * itemsize for s in stride))
        values = numpy.array(values, order="C").astype(np_dtype.replace(">", "<"))
        array = mx.array(values).view(mx.bfloat16) if dtype == "bfloat16" else mx.array(values, dtype=mx_dtype)
        made[key] = array
        return array

    def rebuild_v2(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
        return rebuild(storage, offset, size, stride, storage.dtype)

    def rebuild_v3(storage, offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
        return rebuild(storage, offset, size, stride, str(dtype))

    def rebuild_legacy(storage, offset, size, stride):
        return rebuild(storage, offset, size, stride, storage.dtype)

    def rebuild_parameter(data, requires_grad=True, backward_hooks=None, state=None):
        return data

    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): rebuild_legacy,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild_v2,
        ("torch._utils", "_rebuild_tensor_v3"): rebuild_v3,
        ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
        ("torch.storage", "UntypedStorage"): StorageType(""),
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
        ("builtins", "complex"): complex,
    }
    allowed.update({("torch", name): StorageType(dtype) for name, dtype in storages.items()})
    allowed.update({("torch", name): Dtype(name) for name in kinds})

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in allowed:
                return allowed[(module, name)]
            raise pickle.UnpicklingError(
                f"{module}.{name} in a torch checkpoint: only state_dict contents (tensors, OrderedDict, plain "
                "Python values) are read without torch")

        def persistent_load(self, pid):
            if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
                raise pickle.UnpicklingError(f"unknown persistent id {pid!r} in a torch checkpoint")
            storage_type, key = pid[1], str(pid[2])
            if key not in loaded:
                loaded[key] = Storage(read_storage(key, pid), str(storage_type) or None)
            return loaded[key]

    class PlainUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError(f"{module}.{name} in the header of a legacy torch checkpoint")

    def plain_load(f):  # the plain values of the legacy format's header and key list: no global is run
        return PlainUnpickler(f).load()

    loaded = {}
    big_endian = False
    dry_run = [False]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pickles) != 1:
                raise RuntimeError(f"{path}: a zip file that is not a torch checkpoint (no single data.pkl)")
            prefix = pickles[0][:-len("data.pkl")]
            if prefix + "byteorder" in names:
                big_endian = archive.read(prefix + "byteorder").decode() == "big"

            def read_storage(key, pid):
                return numpy.frombuffer(archive.read(f"{prefix}data/{key}"), dtype=numpy.uint8)

            return Unpickler(io.BytesIO(archive.read(pickles[0]))).load()
    with open(path, "rb") as f:
        # torch's legacy format (torch < 1.6): magic number, protocol version, system info, the object, the storage
        # keys, then each storage as an int64 element count and its bytes
        try:
            magic = plain_load(f)
        except Exception:
            magic = None
        if magic != 0x1950A86A20F9469CFC6C:
            raise RuntimeError(f"{path}: not a torch checkpoint (neither the zip format nor the legacy pickle "
                               "format; the tar format of torch < 0.4 is not read)")
        if plain_load(f) != 1001:
            raise RuntimeError(f"{path}: unknown torch checkpoint protocol version")
        system = plain_load(f)
        big_endian = system.get("little_endian", True) is False

        def read_storage(key, pid):
            if len(pid) > 5 and pid[5] is not None:
                raise pickle.UnpicklingError("a storage view (torch < 0.4) in a legacy torch checkpoint is not read")
            return raw_storages.get(key)

        # the storages follow the object: a first pass (building nothing) finds where they start
        start, raw_storages = f.tell(), {}
        dry_run[0] = True
        Unpickler(f).load()
        dry_run[0] = False
        for key in plain_load(f):
            count = int.from_bytes(f.read(8), "big" if big_endian else "little")
            dtype = loaded[key].dtype
            size = numpy.dtype(kinds[dtype][0]).itemsize if dtype in kinds else 1
            raw_storages[key] = numpy.frombuffer(f.read(count * size), dtype=numpy.uint8)
        loaded.clear()
        f.seek(start)
        return Unpickler(f).load()
''',
    "hub_urlparse": r'''
def hub_urlparse(url, scheme="", allow_fragments=True):
    """torch.hub.urlparse, which torch/hub.py imports from urllib.parse: the same function."""
    from urllib.parse import urlparse

    return urlparse(url, scheme, allow_fragments)
''',
    "hub_download_url_to_file": r'''
def hub_download_url_to_file(url, dst, hash_prefix=None, progress=True):
    """PyTorch's torch.hub.download_url_to_file without torch: the URL's bytes into `dst` through a `.partial`
    file moved into place, the SHA-256 digest checked against hash_prefix (RuntimeError, no file left, when it
    differs); `progress` writes a byte count to stderr instead of tqdm's bar."""
    import errno
    import hashlib
    import os
    import shutil
    import sys
    import tempfile
    import uuid
    from urllib.request import Request, urlopen

    dst = os.path.expanduser(dst)
    for _ in range(tempfile.TMP_MAX):
        tmp_dst = dst + "." + uuid.uuid4().hex + ".partial"
        try:
            f = open(tmp_dst, "w+b")
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(errno.EEXIST, "No usable temporary file name found")
    try:
        with urlopen(Request(url, headers={"User-Agent": "torch.hub"})) as u:
            length = u.info().get_all("Content-Length")
            total = int(length[0]) if length else None
            sha256 = hashlib.sha256() if hash_prefix is not None else None
            done = 0
            while True:
                buffer = u.read(128 * 1024)
                if len(buffer) == 0:
                    break
                f.write(buffer)
                if sha256 is not None:
                    sha256.update(buffer)
                done += len(buffer)
                if progress:
                    sys.stderr.write(f"\r{done / 1048576:.1f} MiB" + (f" of {total / 1048576:.1f} MiB" if total else ""))
            if progress:
                sys.stderr.write("\n")
            f.close()
            if sha256 is not None:
                digest = sha256.hexdigest()
                if digest[: len(hash_prefix)] != hash_prefix:
                    raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "{digest}")')
        shutil.move(f.name, dst)
    finally:
        f.close()
        if os.path.exists(f.name):
            os.remove(f.name)
''',
    "hub_load_state_dict_from_url": r'''
def hub_load_state_dict_from_url(url, model_dir=None, map_location=None, progress=True, check_hash=False,
                                 file_name=None, weights_only=False):
    """PyTorch's torch.hub.load_state_dict_from_url without torch: the file is downloaded once into the cache
    directory torch's hub uses ($TORCH_HOME/hub/checkpoints, or model_dir) and read by torch_checkpoint_load,
    which returns each tensor as an mx.array in torch's layout (convolution kernels (O, I, *k)). check_hash
    compares the SHA-256 digest with the hex digits after the last '-' of the file name, as torch's does.
    map_location does not apply (MLX arrays live in unified memory); the checkpoint is always read as
    weights_only=True reads it (objects other than a state_dict's raise)."""
    if callable(map_location):
        raise NotImplementedError("map_location as a function (torch calls it on each storage): MLX arrays have "
                                  "no device to map; pass None or a device name")
    import os
    import re
    import sys
    import warnings
    import zipfile
    from urllib.parse import urlparse

    if os.getenv("TORCH_MODEL_ZOO"):
        warnings.warn("TORCH_MODEL_ZOO is deprecated, please use env TORCH_HOME instead", stacklevel=2)
    if model_dir is None:
        if os.getenv("TORCH_HUB"):
            warnings.warn("TORCH_HUB is deprecated, please use env TORCH_HOME instead", stacklevel=2)
        torch_home = os.path.expanduser(
            os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")))
        model_dir = os.path.join(torch_home, "hub", "checkpoints")
    os.makedirs(model_dir, exist_ok=True)
    filename = os.path.basename(urlparse(url).path)
    if file_name is not None:
        filename = file_name
    cached_file = os.path.join(model_dir, filename)
    if not os.path.exists(cached_file):
        sys.stdout.write(f'Downloading: "{url}" to {cached_file}\n')
        hash_prefix = None
        if check_hash:
            r = re.search(r"-([a-f0-9]*)\.", filename)
            hash_prefix = r.group(1) if r else None
        hub_download_url_to_file(url, cached_file, hash_prefix, progress=progress)
    if zipfile.is_zipfile(cached_file):
        with zipfile.ZipFile(cached_file) as archive:
            members = archive.infolist()
            if len(members) == 1 and not members[0].is_dir():
                # torch's legacy zip: one checkpoint file inside, extracted next to it (never outside model_dir)
                target = os.path.realpath(os.path.join(model_dir, members[0].filename))
                if os.path.commonpath([target, os.path.realpath(model_dir)]) != os.path.realpath(model_dir):
                    raise ValueError(f"{members[0].filename} would be extracted outside {model_dir}")
                archive.extractall(model_dir)
                cached_file = os.path.join(model_dir, members[0].filename)
    return torch_checkpoint_load(cached_file)
''',
}
# each helper after the helpers it calls
DEPENDS = {"hub_load_state_dict_from_url": ("torch_checkpoint_load", "hub_download_url_to_file")}
