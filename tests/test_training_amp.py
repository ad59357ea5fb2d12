"""Mixed precision as training scripts write it (issue 15): autocast + GradScaler reduce to the float32 step.

Each script converts with info notes only (exit 0) and, run from the same weights and batches, its per-step
losses agree with torch's float32 run (rtol 1e-3). torch here is CPU-only: `autocast(device_type="cuda")`,
`torch.cuda.amp.autocast()` and a CUDA GradScaler disable themselves, so the torch run is the float32 run the
conversion promises; `torch.amp.GradScaler("cpu")` is a real, enabled scaler (scale 65536, unscale before
clipping), whose float32 steps are the same.
"""
import warnings

import numpy as np
import pytest
from test_training_styles import HEAD
from training_support import assert_same_losses, batches, run_both

from torch2mlx import convert_source, load_torch_weights

# torch.autocast(device_type="cuda", dtype=torch.float16), torch.amp.GradScaler, unscale_ before clipping
TORCH_AMP = HEAD + '''

def train(model, batches, epochs=2, max_norm=0.5):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    scaler = torch.amp.GradScaler(SCALER_DEVICE)
    losses = []
    for epoch in range(epochs):
        model.train()
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
    return losses
'''

# from torch.cuda.amp import autocast, GradScaler; enabled=use_amp on both (the classic `--amp` flag)
CUDA_AMP_ENABLED_FLAG = HEAD.replace("from torch.optim import lr_scheduler\n", "from torch.cuda.amp import GradScaler, autocast\n") + '''

def train(model, batches, epochs=2, use_amp=True):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    scaler = GradScaler(enabled=use_amp)
    losses = []
    for epoch in range(epochs):
        for x, y in batches:
            optimizer.zero_grad()
            with autocast(enabled=use_amp):
                output = model(x)
                loss = F.cross_entropy(output, y, label_smoothing=0.1)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
    return losses
'''

# torch.cuda.amp.autocast() with gradient accumulation: scale(loss).backward() every micro-batch, step in the if
CUDA_AMP_ACCUMULATION = HEAD + '''

def train(model, batches, epochs=2, accum_steps=2):
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scaler = torch.cuda.amp.GradScaler()
    losses = []
    for epoch in range(epochs):
        optimizer.zero_grad()
        for i, (x, y) in enumerate(batches):
            with torch.cuda.amp.autocast():
                loss = F.cross_entropy(model(x), y) / accum_steps
            scaler.scale(loss).backward()
            if (i + 1) % accum_steps == 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
            losses.append(loss.item())
    return losses
'''

# `@torch.cuda.amp.autocast()` on the model's forward (under `@torch.no_grad()` for evaluation too)
DECORATED_FORWARD = CUDA_AMP_ACCUMULATION.replace("    def forward(self, x):\n", "    @torch.cuda.amp.autocast()\n    def forward(self, x):\n") \
    .replace("@torch.no_grad()\ndef evaluate", "@torch.no_grad()\n@torch.autocast(device_type=\"cuda\", dtype=torch.bfloat16)\ndef evaluate") \
    .replace("            with torch.cuda.amp.autocast():\n                loss = ", "            loss = ") \
    .replace("            losses.append(loss.item())\n", "            losses.append(loss.item())\n        losses.append(evaluate(model, *batches[0]))\n")

# `if use_amp:` the AMP step, `else:` the float32 one: the same once the scaler and autocast are gone
AMP_OR_NOT = HEAD + '''

def train(model, batches, epochs=2, use_amp=True):
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.01)
    scaler = torch.cuda.amp.GradScaler(enabled=use_amp)
    losses = []
    for epoch in range(epochs):
        for x, y in batches:
            optimizer.zero_grad()
            if use_amp:
                with torch.cuda.amp.autocast():
                    output = model(x)
                    loss = F.cross_entropy(output, y)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                scaler.step(optimizer)
                scaler.update()
            else:
                output = model(x)
                loss = F.cross_entropy(output, y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                optimizer.step()
            losses.append(loss.item())
    return losses
'''


def _run(source):
    with warnings.catch_warnings():  # torch: "CUDA is not available, disabling autocast / GradScaler"
        warnings.simplefilter("ignore")
        return run_both(source)


def _notes(result):
    return sorted({(d.rule_id, d.severity.value) for d in result.diagnostics if d.rule_id in ("autocast", "grad-scaler")})


@pytest.mark.parametrize("source", [TORCH_AMP.replace("SCALER_DEVICE", '"cuda"'), TORCH_AMP.replace("SCALER_DEVICE", '"cpu"'),
                                    CUDA_AMP_ENABLED_FLAG, CUDA_AMP_ACCUMULATION, DECORATED_FORWARD, AMP_OR_NOT],
                         ids=["torch.autocast-cuda-scaler", "torch.autocast-enabled-cpu-scaler", "cuda.amp-enabled-flag",
                              "cuda.amp-accumulation", "autocast-decorators", "if-use_amp-else"])
def test_amp_loop_is_the_float32_step_with_info_notes(source):
    t, m, result = _run(source)
    assert _notes(result) == [("autocast", "info"), ("grad-scaler", "info")], result.code
    code = [line for line in result.code.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "scaler" in line or "autocast" in line], result.code
    assert "nn.value_and_grad(model, loss_fn)" in result.code and "# torch2mlx" not in result.code, result.code
    assert_same_losses(t, m)


def test_the_notes_say_what_changed():
    result = convert_source(TORCH_AMP.replace("SCALER_DEVICE", '"cuda"'))
    notes = {d.rule_id: d.message for d in result.diagnostics}
    assert "float32" in notes["autocast"] and "autocast disabled" in notes["autocast"]
    for said in ("scaler.scale(loss).backward() -> loss.backward()", "scaler.step(opt) -> opt.step()", "scaler.update() dropped",
                 "skips the steps whose scaled gradients hold inf/nan"):
        assert said in notes["grad-scaler"], notes["grad-scaler"]


# A checkpoint holding the scaler's state next to the model's, the optimizer's and the scheduler's; resumed.
CHECKPOINT = CUDA_AMP_ENABLED_FLAG.replace("from torch.cuda.amp import GradScaler, autocast\n",
                                           "from torch.cuda.amp import GradScaler, autocast\nfrom torch.optim import lr_scheduler\n") \
    .replace("def train(model, batches, epochs=2, use_amp=True):", "def train(model, batches, path, epochs=4, stop=None, resume=False, use_amp=True):") \
    .replace("    losses = []\n    for epoch in range(epochs):\n", '''    scheduler = lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    start = 0
    if resume:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        start = checkpoint["epoch"] + 1
    losses = []
    for epoch in range(start, epochs):
''').replace("        for x, y in batches:\n", "        for x, y in batches[:4]:\n").replace("            losses.append(loss.item())\n", '''            losses.append(loss.item())
        scheduler.step()
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(), "epoch": epoch}, path)
        if epoch == stop:
            break
''')


def test_checkpoint_with_the_scaler_state_resumes_like_torch(tmp_path):
    import mlx.core as mx
    import torch

    result = convert_source(CHECKPOINT)
    assert not [d for d in result.diagnostics if d.severity.value != "info"], result.code
    assert "torch" not in result.code.replace("torch2mlx", "") and convert_source(result.code).code == result.code
    assert ('save_checkpoint({"model": model.parameters(), "optimizer": optimizer.state, "scheduler": scheduler.state_dict(),\n'
            '                    "epoch": epoch}, path)') in result.code, result.code
    assert "scaler" not in result.code.split("def train")[1], result.code
    assert "scaler.state_dict() left out of the checkpoint" in {d.rule_id: d.message for d in result.diagnostics}["grad-scaler"]
    t_ns: dict = {}
    m_ns: dict = {}
    exec(compile(CHECKPOINT, "torch_script", "exec"), t_ns)  # noqa: S102 - our own script
    exec(compile(result.code, "mlx_script", "exec"), m_ns)  # noqa: S102
    xs, ys = batches()
    t_batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in zip(xs, ys)]
    m_batches = [(mx.array(x), mx.array(y)) for x, y in zip(xs, ys)]
    torch.manual_seed(0)
    t_model = t_ns["Net"]()
    state = {k: v.clone() for k, v in t_model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = t_ns["train"](t_model, t_batches, str(tmp_path / "t.pt"))
    m_model = m_ns["Net"]()
    load_torch_weights(m_model, state)
    path = str(tmp_path / "m.safetensors")
    first = m_ns["train"](m_model, m_batches, path, stop=1)
    fresh = m_ns["Net"]()  # different weights until the checkpoint is loaded
    rest = m_ns["train"](fresh, m_batches, path, resume=True)
    assert len(first) == 8 and len(rest) == 8
    np.testing.assert_allclose(first + rest, whole, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("change,why", [
    # the scale itself is read: torch's is 65536 and changes with overflows, a float32 step has none
    ("            scaler.update()\n", "            scaler.update()\n            losses.append(scaler.get_scale())\n"),
    # the torchvision reference style: a scaler or None, tested at the step
    ("    scaler = GradScaler(enabled=use_amp)\n", "    scaler = GradScaler() if use_amp else None\n"),
    # the scaler goes to another function
    ("    losses = []\n", "    log_scaler(scaler)\n    losses = []\n"),
])
def test_amp_forms_that_read_the_scaler_stay_flagged(change, why):
    source = CUDA_AMP_ENABLED_FLAG.replace(change, why)
    assert source != CUDA_AMP_ENABLED_FLAG
    result = convert_source(source)
    assert any(d.rule_id == "torch.amp.GradScaler" and d.severity.value == "warning" for d in result.diagnostics), result.code
    assert "scaler.step(optimizer)" in result.code and "scaler.scale(loss).backward()" in result.code, result.code


def test_amp_and_float32_branches_that_differ_stay_flagged():
    """The float32 branch clips, the AMP branch does not: the two steps differ, the `if` stays and is flagged."""
    source = AMP_OR_NOT.replace("                scaler.unscale_(optimizer)\n                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)\n", "")
    assert source != AMP_OR_NOT
    result = convert_source(source)
    assert "            if use_amp:\n" in result.code and "            else:\n" in result.code, result.code
    assert any(d.rule_id == "train-step" and d.severity.value == "warning" for d in result.diagnostics), result.code
