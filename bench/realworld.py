"""A real-model corpus: convert installed torchvision / timm / transformers as a user would, run, compare.

Usage:
    .venv/bin/python bench/realworld.py                          # the whole corpus (minutes on 2 cores)
    .venv/bin/python bench/realworld.py --only torchvision --models resnet18,swin_t
    .venv/bin/python bench/realworld.py --json realworld.json --markdown table.md --workdir /tmp/rw --reuse

What happens, per package (bench/realworld_corpus.py lists the models):

1. The installed package's source is copied to `<workdir>/src/` (torchvision and timm whole, without compiled
   files; for transformers the corpus architectures' `modeling_<arch>.py`) and converted once with the CLI,
   as a user migrating a repository would: `torch2mlx convert src/<pkg> -o out/<pkg> --report-json ...`.
   timm imports torchvision (`torchvision.ops.misc`), so it is converted in one run together with torchvision
   (`torch2mlx convert src -o out` over a tree holding both, in `<workdir>/joint/`): torchvision's modules are
   the project's own there, as for a user migrating both.
2. One torch process builds every model of the package (seed 0, BatchNorm statistics and affine
   parameters randomised as in the parity tests), runs it in eval mode on a seeded random input, and
   saves the state_dict, the input and the outputs; it also records which functions of the package ran
   (a profile hook during build and forward).
3. A model is FLAGGED when a warning of the conversion report sits in code the model ran: a statement
   that ran (line tracing during build and forward), the body of a class one of whose functions ran, or
   module level of a file its import loaded. The flag kinds are the warnings' rule ids.
4. Every model (flagged or not) is then run by a fresh MLX process in which torch (and any
   torchvision / timm not converted) cannot be imported (`sys.modules[name] = None`: imports fail and
   `importlib.util.find_spec` says the package is not installed, as on a machine without torch); modules of
   the converted tree take precedence over installed ones (transformers' own, unconverted, modules —
   configuration classes, `modeling_utils` — stay importable, and fail where they need torch). It imports
   the constructor from the converted tree, builds the model with the same arguments, loads torch's
   state_dict with `torch2mlx.load_torch_weights`, feeds the input (NHWC where the converted class says
   its input is channels-last) and compares with torch2mlx.verify_model's comparison (atol = rtol = 1e-4).

Classes: PASS (no flag in code the model ran, outputs match), FLAGGED (flags; the run's outcome is kept
too), WRONG (no flag, outputs differ), CRASH (no flag, the MLX side raised or timed out; stage and first
line of the error), SETUP (the torch side itself failed: a corpus problem, not a conversion one).
"""
from __future__ import annotations

import argparse
import ast
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(Path(__file__).resolve().parent))
REALCODE = Path("/work/shared/realcode")  # torchvision_on_cpu_torch: torchvision's CUDA wheel on CPU torch
JOINT = {"timm": ("torchvision",)}  # packages converted in one run with these (what they import)
BLOCKED = ("torch", "functorch", "torchaudio", "torchtext", "triton", "torchvision", "timm")
ATOL = RTOL = 1e-4
CLASSES = ("PASS", "FLAGGED", "WRONG", "CRASH", "SETUP")

from realworld_corpus import CORPUS, PACKAGES, Entry  # noqa: E402


def site_packages() -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"])


# ---------------------------------------------------------------- step 1: copy and convert


def _copy_package(pkg: str, src: Path, entries: list) -> None:
    installed = site_packages() / pkg
    if pkg == "transformers":
        for arch in sorted({e.module.split(".")[2] for e in entries}):
            target = src / "transformers" / "models" / arch
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(installed / "models" / arch / f"modeling_{arch}.py", target)
        return
    shutil.copytree(installed, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.so.*", "*.pyd", "*.dylib"))


def convert_package(pkg: str, workdir: Path, entries: list, jobs: int, reuse: bool, hub: bool = True) -> dict:
    """Copy and convert one package; the CLI's JSON report (cached as <workdir>/<pkg>.report.json). transformers'
    modeling files are converted with `--hub transformers` (its PreTrainedModel, ACT2FN, caches, masks and output
    classes from torch2mlx's MLX stand-ins, as the issue allows) unless `hub` is False."""
    report = workdir / f"{pkg}.report.json"
    if reuse and report.is_file():
        return json.loads(report.read_text())
    for folder in (workdir / "src" / pkg, workdir / "out" / pkg):
        shutil.rmtree(folder, ignore_errors=True)
    _copy_package(pkg, workdir / "src", entries)
    # timm imports torchvision: a user migrating it converts a tree holding both, in one run, so torchvision's
    # modules are the project's own there (not torch dependencies); the run sits in <workdir>/joint/
    together = JOINT.get(pkg, ())
    cwd = workdir / "joint" if together else workdir
    if together:
        shutil.rmtree(cwd, ignore_errors=True)
        for name in (*together, pkg):
            _copy_package(name, cwd / "src", [])
    source, target = ("src", "out") if together else (f"src/{pkg}", f"out/{pkg}")
    cmd = [sys.executable, "-m", "torch2mlx", "convert", source, "-o", target, "--report-json", str(report.resolve()),
           "--no-cache", "--isolated", "--exit-zero", "-q", "--force", "-j", str(jobs)]
    if pkg == "transformers" and hub:
        cmd += ["--hub", "transformers"]
    t0 = time.perf_counter()
    # the torch2mlx of this bench's tree, not whichever one is installed (a worktree measuring older code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode != 0 or not report.is_file():
        raise SystemExit(f"conversion of {pkg} failed ({done.returncode}): {done.stderr[-2000:]}")
    data = json.loads(report.read_text())
    if together:  # this package's files only (paths `src/<pkg>/...` as in a run of its own) and its converted tree
        data["files"] = [f for f in data["files"] if f["path"].startswith(f"src/{pkg}/")]
        (workdir / "out").mkdir(exist_ok=True)
        shutil.move(str(cwd / "out" / pkg), str(workdir / "out" / pkg))
        shutil.rmtree(cwd, ignore_errors=True)
    data["seconds"] = time.perf_counter() - t0
    report.write_text(json.dumps(data))
    print(f"[{pkg}] converted {data['summary']['files']} files in {data['seconds']:.0f} s: {data['summary']['by_status']}",
          file=sys.stderr, flush=True)
    return data


# ---------------------------------------------------------------- step 2: the torch side


def _build(entry: Entry, namespace_module):
    args, kwargs = list(entry.args), dict(entry.kwargs)
    if entry.config is not None:
        cfg_module, cfg_class, cfg_kwargs = entry.config
        args.insert(0, getattr(importlib.import_module(cfg_module), cfg_class)(**cfg_kwargs))
    return getattr(namespace_module, entry.ctor)(*args, **kwargs)


def _inputs(entry: Entry) -> list:
    from torch2mlx.verify_model import _make_inputs

    return _make_inputs([spec for _, spec in entry.inputs], seed=0)


def _call(model, entry: Entry, arrays: list, wrap):
    positional = [wrap(a) for (key, _), a in zip(entry.inputs, arrays) if key is None]
    keywords = {key: wrap(a) for (key, _), a in zip(entry.inputs, arrays) if key is not None}
    out = model(*positional, **keywords)
    return out[0] if entry.first_output else out


class _Tracer:
    """Which functions of the package ran ({path: {first line of the code object}}) and which of their lines
    ({path: {line}}): a flag in a branch the model never took (a builder's `if weights is not None:
    model.load_state_dict(...)`) is not in code the model needs."""

    def __init__(self, roots: list):
        self.roots = tuple(str(r) + os.sep for r in roots)
        self.ran: dict = {}
        self.lines: dict = {}

    def __call__(self, frame, event, arg):  # the global trace function (sys.settrace): one call per new frame
        code = frame.f_code
        name = code.co_filename
        if not name.startswith(self.roots):
            return None  # no line events for torch's own frames
        self.ran.setdefault(name, set()).add(code.co_firstlineno)
        lines = self.lines.setdefault(name, set())

        def local(frame, event, arg):
            if event == "line":
                lines.add(frame.f_lineno)
            return local

        return local


def torch_side(pkg: str, names: list, workdir: Path, timeout: int) -> None:
    """Build, run and save every named model of `pkg` (one process); writes data/<name>.json (+ .npz)."""
    import signal

    import numpy as np

    sys.path.insert(0, str(REALCODE))
    import torchvision_on_cpu_torch  # noqa: F401
    import torch

    from tests.model_support import randomize_batch_norm
    from torch2mlx.verify_model import _leaves, _torch_numpy

    torch.set_num_threads(1)
    sp = site_packages()
    src = workdir / "src"
    data = workdir / "data"
    data.mkdir(exist_ok=True)

    def on_alarm(*_):
        raise TimeoutError(f"torch side took over {timeout} s")

    signal.signal(signal.SIGALRM, on_alarm)
    for entry in [e for e in CORPUS if e.package == pkg and e.name in names]:
        meta: dict = {"name": entry.name}
        tracer = _Tracer([sp / p for p in PACKAGES if (src / p).is_dir()])
        signal.alarm(timeout)
        try:
            module = importlib.import_module(entry.module)
            torch.manual_seed(0)
            sys.settrace(tracer)
            try:
                model = _build(entry, module)
                randomize_batch_norm(model)
                model.eval()
                arrays = _inputs(entry)
                with torch.no_grad():
                    out = _call(model, entry, arrays, torch.from_numpy)
            finally:
                sys.settrace(None)
            leaves = _leaves(out)
            state = model.state_dict()
            first_key: dict = {}
            tied = {}
            for key, value in state.items():
                ident = (value.data_ptr(), tuple(value.shape), tuple(value.stride()), str(value.dtype))
                if value.numel() and ident in first_key:
                    tied[key] = first_key[ident]
                else:
                    first_key.setdefault(ident, key)
            np.savez(data / f"{entry.key}.npz",
                     **{f"state:{k}": _torch_numpy(v) for k, v in state.items() if k not in tied},
                     **{f"input:{i}": a for i, a in enumerate(arrays)},
                     **{f"output:{i}": _torch_numpy(v) for i, (_, v) in enumerate(leaves)})
            meta.update(tied=tied, outputs=[n for n, _ in leaves], torch_class=type(model).__name__,
                        params=int(sum(p.numel() for p in model.parameters())),
                        ran={str(Path(f).relative_to(sp)): sorted(lines) for f, lines in tracer.ran.items()
                             if (src / Path(f).relative_to(sp)).is_file()},
                        lines={str(Path(f).relative_to(sp)): sorted(lines) for f, lines in tracer.lines.items()
                               if (src / Path(f).relative_to(sp)).is_file()},
                        imported=_imported(sp, src))
        except BaseException as exc:  # noqa: BLE001 - recorded; the next model still runs
            if isinstance(exc, KeyboardInterrupt):
                raise
            meta["error"] = f"{type(exc).__name__}: {_first_line(exc)}"
        finally:
            signal.alarm(0)
        (data / f"{entry.key}.json").write_text(json.dumps(meta))
        print(f"[torch] {entry.name}: {meta.get('error', 'ok')}", file=sys.stderr, flush=True)


def _imported(sp: Path, src: Path) -> list:
    """The package files imported so far in this process that the converted tree has (src-relative)."""
    found = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and file.startswith(str(sp) + os.sep) and (src / Path(file).relative_to(sp)).is_file():
            found.add(str(Path(file).relative_to(sp)))
    return sorted(found)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:240] if text else ""


# ---------------------------------------------------------------- step 4: the MLX side


class ConvertedFirst(importlib.abc.MetaPathFinder):
    """Modules that exist in the converted tree load from it, whatever else sys.path holds."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def find_spec(self, name, path=None, target=None):
        base = self.root.joinpath(*name.split("."))
        if (base / "__init__.py").is_file():
            return importlib.util.spec_from_file_location(name, base / "__init__.py", submodule_search_locations=[str(base)])
        if base.with_suffix(".py").is_file():
            return importlib.util.spec_from_file_location(name, base.with_suffix(".py"))
        return None


def block_torch(converted_root: Path) -> ConvertedFirst:
    """From now on torch cannot be imported (nor torchvision / timm unless converted under `converted_root`)."""
    for name in BLOCKED:
        if name in sys.modules and sys.modules[name] is not None:
            raise RuntimeError(f"{name} is already imported: block it before anything imports it")
        if not (Path(converted_root) / name).is_dir():
            sys.modules[name] = None  # `import torch` raises ModuleNotFoundError; find_spec("torch") is None
    finder = ConvertedFirst(converted_root)
    sys.meta_path.insert(0, finder)
    return finder


def _where(tb, root: Path) -> str:
    """The innermost frame of the traceback inside the converted tree (`out/...:line`), or ''."""
    frames = [f for f in traceback.extract_tb(tb) if f.filename.startswith(str(root))]
    return f"out/{Path(frames[-1].filename).relative_to(root)}:{frames[-1].lineno}" if frames else ""


def mlx_side(key: str, workdir: Path) -> dict:
    """Import, build, load, run and compare one model in this (fresh) process, torch blocked."""
    out_root = (workdir / "out").resolve()
    block_torch(out_root)
    import mlx.core as mx
    import numpy as np

    from torch2mlx.verify_model import _compare, _leaves, channels_last_layout
    from torch2mlx.weights import load_torch_weights

    entry = next(e for e in CORPUS if e.key == key)
    meta = json.loads((workdir / "data" / f"{key}.json").read_text())
    saved = np.load(workdir / "data" / f"{key}.npz")
    state = {k.split(":", 1)[1]: saved[k] for k in saved.files if k.startswith("state:")}
    for key, same in meta["tied"].items():
        state[key] = state[same]  # the very same array: load_torch_weights sees a tied duplicate
    arrays = [saved[f"input:{i}"] for i in range(len(entry.inputs))]
    expected = [(n, saved[f"output:{i}"]) for i, n in enumerate(meta["outputs"])]
    stage = "import"
    try:
        module = importlib.import_module(entry.module)
        stage = "build"
        model = _build(entry, module)
        model.eval()
        stage = "load weights"
        load_torch_weights(model, state)
        stage = "forward"
        cls = type(model)
        code_file = sys.modules[cls.__module__].__file__
        cl_inputs, cl_outputs = channels_last_layout(Path(code_file).read_text(encoding="utf-8"), cls.__name__)
        import inspect

        params = [p for p in inspect.signature(model.__call__).parameters]
        positional = [k for k, _ in entry.inputs if k is None]
        feed = []
        for i, ((key, _), a) in enumerate(zip(entry.inputs, arrays)):
            arg = key if key is not None else (params[i] if i < len(params) else "")
            feed.append(np.moveaxis(a, 1, -1) if arg in cl_inputs and a.ndim >= 3 else a)
        del positional
        actual = _leaves(_call(model, entry, feed, mx.array))
        mx.eval([a for _, a in actual if isinstance(a, mx.array)])
    except Exception as exc:  # noqa: BLE001 - the verdict
        return {"run": "CRASH", "stage": stage, "error": f"{type(exc).__name__}: {_first_line(exc)}",
                "where": _where(exc.__traceback__, out_root)}
    if len(actual) != len(expected):
        return {"run": "WRONG", "stage": "compare", "error": f"MLX returns {len(actual)} arrays, torch {len(expected)}"}
    checks = _compare(expected, actual, cl_outputs, RTOL, ATOL)
    worst = max((c.max_abs_error for c in checks), default=0.0)
    problems = [c.problem for c in checks if c.problem]
    if problems or not all(c.passed for c in checks):
        return {"run": "WRONG", "stage": "compare", "error": problems[0] if problems else f"max abs error {worst:.3g}",
                "max_abs_error": worst}
    return {"run": "PASS", "max_abs_error": worst}


# ---------------------------------------------------------------- step 3: which flags the model ran into


def _scopes(path: Path) -> list:
    """(start, end, is_class, body_start) for every function and class of a file; start is the first
    decorator's line, as a code object's co_firstlineno; body_start the first line of the body (decorators,
    default values and annotations of a def run where the def runs, not when it is called)."""
    tree = ast.parse(path.read_bytes())
    return [(min([n.lineno, *(d.lineno for d in n.decorator_list)]), n.end_lineno, isinstance(n, ast.ClassDef),
             n.body[0].lineno)
            for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _decorator_lines(path: Path) -> set:
    """The lines of every decorator of a file (they run where the def or class runs: at import, at module level)."""
    tree = ast.parse(path.read_bytes())
    return {line for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            for d in n.decorator_list for line in range(d.lineno, d.end_lineno + 1)}


def _statements(path: Path) -> list:
    """(first line, last line of the part that runs as one step) of every statement: a compound statement's
    header (up to its body), a simple statement whole."""
    tree = ast.parse(path.read_bytes())
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            body = getattr(node, "body", None)
            end = body[0].lineno - 1 if isinstance(body, list) and body and isinstance(body[0], ast.stmt) else node.end_lineno
            spans.append((node.lineno, max(node.lineno, end)))
    return sorted(spans)


def _statement_ran(line: int, statements: list, executed: set) -> bool:
    """Whether the innermost statement holding `line` ran (a line event on any line of its span)."""
    holding = [(start, end) for start, end in statements if start <= line <= end]
    if not holding:
        return True  # not inside a statement's running part (a compound statement's body line): do not discount
    start, end = max(holding)
    return any(n in executed for n in range(start, end + 1))


def _model_ran_it(line: int, scopes: list, ran: set) -> bool:
    """Whether the model's own code reached this line: inside a function that ran, or in the body of a class
    one of whose functions ran. False for module-level statements (those run at import, for every model)."""
    enclosing = [s for s in scopes if s[0] <= line <= s[1]]
    if not enclosing:
        return False
    start, end, is_class, _ = max(enclosing)
    if not is_class:
        return start in ran
    return any(s_ in ran for s_, e_, c_, _ in scopes if not c_ and start <= s_ <= end)


def model_flags(meta: dict, report: dict, workdir: Path, scopes_cache: dict) -> tuple:
    """The conversion warnings in code this model ran (statements that ran in functions that ran, bodies of
    classes it used), and the other warnings at module level of the package files its import loaded, decorators
    included (they run at import time): two lists of (rule id, message, path:line). A warning in a branch of a
    function that the model never took is in neither, nor one on a class (its header or class-level body) or a
    def header of a class or function the model never used."""
    by_path = {f["path"]: f["diagnostics"] for f in report["files"]}
    ran_files = meta.get("ran", {})
    found, at_import = [], []
    for rel in sorted(set(meta.get("imported", ())) | set(ran_files)):
        path = f"src/{rel}"
        diags = [d for d in by_path.get(path, ()) if d["severity"] != "info"]
        if not diags:
            continue
        if path not in scopes_cache:
            scopes_cache[path] = (_scopes(workdir / path), _statements(workdir / path), _decorator_lines(workdir / path))
        (scopes, statements, decorators), ran = scopes_cache[path], set(ran_files.get(rel, ()))
        executed = set(meta.get("lines", {}).get(rel, ())) if "lines" in meta else None
        for d in diags:
            flag = (d["rule_id"], d["message"], f"{path}:{d['line']}")
            if _model_ran_it(d["line"], scopes, ran):
                in_function = any(not c and body <= d["line"] <= e for s, e, c, body in scopes)
                if executed is None or not in_function or _statement_ran(d["line"], statements, executed):
                    found.append(flag)
            elif any(s <= d["line"] <= e for s, e, c, body in scopes) and d["line"] not in decorators:
                # the header or class-level body of a class, or the header of a def, that the model never used:
                # the flag is about using it (a class built on an untranslated base, a function the layout analysis
                # does not follow); were the statement to break the import, the run says so
                continue
            elif not any(not c and body <= d["line"] <= e for s, e, c, body in scopes):  # runs at import
                at_import.append(flag)
    return found, at_import


# ---------------------------------------------------------------- the run


def _run_mlx(key: str, workdir: Path, timeout: int) -> dict:
    cmd = [sys.executable, __file__, "--mlx-side", key, "--workdir", str(workdir)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"run": "CRASH", "stage": "timeout", "error": f"no result within {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return {"run": "CRASH", "stage": "process", "error": tail[:240]}
    return json.loads(lines[-1])


def run(args) -> list:
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    wanted = set(args.models.split(",")) if args.models else None
    unknown = (wanted or set()) - {e.name for e in CORPUS}
    if unknown:
        raise SystemExit(f"unknown models: {', '.join(sorted(unknown))}")
    rows = []
    for pkg in args.only.split(",") if args.only else PACKAGES:
        entries = [e for e in CORPUS if e.package == pkg and (wanted is None or e.name in wanted)]
        if not entries:
            continue
        if pkg == "timm":  # timm imports torchvision.ops.misc: the user converts torchvision too
            convert_package("torchvision", workdir, [], args.jobs, reuse=True)
        report = convert_package(pkg, workdir, [e for e in CORPUS if e.package == pkg], args.jobs, args.reuse,
                                 hub=not args.no_hub)
        subprocess.run([sys.executable, __file__, "--torch-side", pkg, "--models", ",".join(e.name for e in entries),
                        "--workdir", str(workdir), "--timeout", str(args.timeout)], check=False)
        scopes_cache: dict = {}
        for entry in entries:
            rows.append(_classify(entry, workdir, report, scopes_cache, args.timeout))
            r = rows[-1]
            print(f"[{pkg}] {entry.name}: {r['class']} {', '.join(r['flag_kinds'])} {r.get('error', '')}",
                  file=sys.stderr, flush=True)
    return rows


def _classify(entry: Entry, workdir: Path, report: dict, scopes_cache: dict, timeout: int) -> dict:
    row = {"package": entry.package, "family": entry.family, "model": entry.name, "flag_kinds": [], "flags": []}
    meta_file = workdir / "data" / f"{entry.key}.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {"error": "the torch side wrote nothing"}
    if "error" in meta:
        return {**row, "class": "SETUP", "error": f"torch side: {meta['error']}"}
    flags, at_import = model_flags(meta, report, workdir, scopes_cache)
    row.update(flag_kinds=_kinds(flags), flags=[list(f) for f in flags], import_flag_kinds=_kinds(at_import),
               import_flags=[list(f) for f in at_import], params=meta.get("params"),
               files_ran=len(meta.get("ran", {})), files_imported=len(meta.get("imported", ())))
    outcome = _run_mlx(entry.key, workdir, timeout)
    row["run"] = outcome
    if flags or at_import:
        row["class"] = "FLAGGED"
    else:
        row["class"] = outcome["run"]
        if outcome["run"] != "PASS":
            row["error"] = f"{outcome.get('stage', '')}: {outcome.get('error', '')}" + (
                f" ({outcome['where']})" if outcome.get("where") else "")
    return row


def _kinds(flags: list) -> list:
    counts = Counter(rule for rule, _, _ in flags)
    return [f"{rule} ({n})" if n > 1 else rule for rule, n in counts.most_common()]


def _top(rows: list, key: str) -> list:
    models_with = Counter()
    sites: dict = {}
    messages: dict = {}
    for r in rows:
        kinds = set()
        for rule, message, where in r.get(key, ()):
            kinds.add(rule)
            sites.setdefault(rule, set()).add(where)
            messages.setdefault(rule, Counter())[message] += 1
        models_with.update(kinds)
    return [{"rule_id": rule, "models": n, "sites": len(sites[rule]), "example": messages[rule].most_common(1)[0][0]}
            for rule, n in sorted(models_with.items(), key=lambda kv: (-kv[1], -len(sites[kv[0]]), kv[0]))]


def summary(rows: list) -> dict:
    per_package = {}
    for pkg in PACKAGES:
        mine = [r for r in rows if r["package"] == pkg]
        if mine:
            per_package[pkg] = {c: sum(1 for r in mine if r["class"] == c) for c in CLASSES} | {"models": len(mine)}
    flagged_runs = Counter(r["run"]["run"] for r in rows if r["class"] == "FLAGGED" and "run" in r)
    crash_sites = Counter(f"{r['run'].get('where') or r['run'].get('stage')}: {r['run'].get('error')}"
                          for r in rows if r.get("run", {}).get("run") == "CRASH")
    return {"per_package": per_package, "top_flag_kinds": _top(rows, "flags"),
            "top_import_flag_kinds": _top(rows, "import_flags"), "flagged_models_run": dict(flagged_runs),
            "crash_sites": crash_sites.most_common()}


def markdown(rows: list, info: dict, top: int = 15) -> str:
    out = ["| package | family | model | class | flag kinds in code the model ran / error | flags at import | run anyway |",
           "|---|---|---|---|---|---:|---|"]
    for r in rows:
        detail = ", ".join(r["flag_kinds"]) if r["class"] == "FLAGGED" else r.get("error", "")
        run_ = r.get("run", {})
        ran = run_.get("run", "") + (f": {run_.get('stage')}: {run_.get('error', '')}" if run_.get("error") else "")
        ran += f" ({run_['where']})" if run_.get("where") else ""
        out.append(f"| {r['package']} | {r['family']} | {r['model']} | {r['class']} | {_cell(detail)} | "
                   f"{len(r.get('import_flags', ()))} | {_cell(ran) if r['class'] == 'FLAGGED' else ''} |")
    out += ["", "| package | models | " + " | ".join(CLASSES) + " |", "|---|---:|" + "---:|" * len(CLASSES)]
    for pkg, counts in info["per_package"].items():
        out.append(f"| {pkg} | {counts['models']} | " + " | ".join(str(counts[c]) for c in CLASSES) + " |")
    totals = {c: sum(v[c] for v in info["per_package"].values()) for c in CLASSES}
    out.append(f"| all | {len(rows)} | " + " | ".join(str(totals[c]) for c in CLASSES) + " |")
    for title, key in (("in code the models ran", "top_flag_kinds"), ("at import (module level of files imported)",
                                                                    "top_import_flag_kinds")):
        out += ["", f"Top flag kinds {title}:", "", "| rule id | models | sites | most common message |", "|---|---:|---:|---|"]
        for t in info[key][:top]:
            out.append(f"| `{t['rule_id']}` | {t['models']} | {t['sites']} | {_cell(t['example'])} |")
    out += ["", "Where the MLX runs crashed (flagged models included):", "", "| models | where: error |", "|---:|---|"]
    for site, n in info["crash_sites"][:top]:
        out.append(f"| {n} | {_cell(site)} |")
    return "\n".join(out) + "\n"


def _cell(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated packages: torchvision, timm, transformers")
    ap.add_argument("--models", help="comma-separated model names of the corpus")
    ap.add_argument("--json", help="write rows and summary as JSON here")
    ap.add_argument("--markdown", help="write the tables as Markdown here")
    ap.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "torch2mlx-realworld"),
                    help="sources, converted tree, saved weights (kept; nothing of it is committed)")
    ap.add_argument("--reuse", action="store_true", help="reuse the conversion already in --workdir")
    ap.add_argument("--no-hub", action="store_true",
                    help="convert transformers without `--hub transformers` (its machinery then needs torch)")
    ap.add_argument("--jobs", type=int, default=2, help="conversion worker processes")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per model and side")
    ap.add_argument("--torch-side", help=argparse.SUPPRESS)
    ap.add_argument("--mlx-side", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mlx_side:
        print(json.dumps(mlx_side(args.mlx_side, Path(args.workdir))))
        return
    if args.torch_side:
        torch_side(args.torch_side, args.models.split(","), Path(args.workdir), args.timeout)
        return
    t0 = time.perf_counter()
    rows = run(args)
    info = summary(rows)
    info["seconds"] = round(time.perf_counter() - t0)
    text = markdown(rows, info)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": info}, indent=1))


if __name__ == "__main__":
    main()
