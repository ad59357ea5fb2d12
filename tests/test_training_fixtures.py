"""Training scripts in real-world styles (issue 15), fixtures/training/*.py: each converts with no warning,
trains like torch from the same weights and batches (the first 20 losses within rtol 1e-3) and writes a
checkpoint that a fresh MLX run resumes from."""
from pathlib import Path

import numpy as np
import pytest
from training_support import converted_namespaces

from torch2mlx import load_torch_weights

FIXTURES = Path(__file__).parent.parent / "fixtures" / "training"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These models are tiny: torch's thread pool only costs time (much of it on a loaded machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _same_weights(t_model, m_model) -> None:
    load_torch_weights(m_model, t_model.state_dict())


def _assert_20_losses(t_losses, m_losses) -> None:
    assert len(t_losses) == len(m_losses) >= 20
    assert len(set(np.round(t_losses[:20], 3))) > 5, "the losses should move"
    np.testing.assert_allclose(m_losses[:20], t_losses[:20], rtol=1e-3, atol=1e-6)


@pytest.fixture(scope="module")
def image_classifier():
    torch_ns, mlx_ns, code = converted_namespaces(FIXTURES / "image_classifier.py")
    assert "accum_grads = accumulate_grads(accum_grads, grads)" in code, code
    assert "scheduler = LRScheduler(optimizer" in code and "save_checkpoint({" in code
    return torch_ns, mlx_ns


def test_image_classifier_accumulation_and_per_epoch_cosine_match_torch(image_classifier):
    """BatchNorm CNN, 2 micro-batches per SGD (nesterov, weight decay) update, clipping in the step's `if`,
    label smoothing, CosineAnnealingLR stepped per epoch: losses, validation and learning rate as torch's."""
    import torch

    t_ns, m_ns = image_classifier
    torch.manual_seed(0)
    t_model, m_model = t_ns["SmallConvNet"](), m_ns["SmallConvNet"]()
    _same_weights(t_model, m_model)
    t_hist, m_hist = [], []
    t_val = t_ns["run"](t_ns["parse_args"]([]), t_model, t_hist)
    m_val = m_ns["run"](m_ns["parse_args"]([]), m_model, m_hist)
    _assert_20_losses(t_hist, m_hist)
    np.testing.assert_allclose(m_val, t_val, rtol=1e-3)


def test_image_classifier_resumes_from_its_checkpoint(image_classifier, tmp_path):
    """Stopped after epoch 1 and resumed in a fresh model: the second epoch's losses are the uninterrupted run's."""
    t_ns, m_ns = image_classifier
    path = str(tmp_path / "ckpt.pt")
    whole, first, rest = [], [], []
    m_model = m_ns["SmallConvNet"]()
    start = {k: v for k, v in m_model.parameters().items()}
    m_ns["run"](m_ns["parse_args"](["--epochs", "2"]), m_model, whole)
    m_model = m_ns["SmallConvNet"]()
    m_model.update(start)
    m_ns["run"](m_ns["parse_args"](["--epochs", "1", "--checkpoint", path]), m_model, first)
    fresh = m_ns["SmallConvNet"]()
    result = m_ns["run"](m_ns["parse_args"](["--epochs", "2", "--resume", path]), fresh, rest)
    assert len(first) == len(rest) == 10
    np.testing.assert_allclose(first + rest, whole, rtol=1e-5, atol=1e-6)
    assert result[1] >= 0.0


@pytest.fixture(scope="module")
def language_model():
    torch_ns, mlx_ns, code = converted_namespaces(FIXTURES / "lm_adamw_groups.py")
    assert "for group_optimizer in optimizer.group_optimizers:\n            group_optimizer.learning_rate = lr" in code, code
    assert "optimizer = ParamGroupOptimizer(self, optim_groups" in code and "save_checkpoint(checkpoint, args.out)" in code
    return torch_ns, mlx_ns


def _lm_pair(t_ns, m_ns):
    import torch

    torch.manual_seed(0)
    vocab = t_ns["load_data"]()[2]
    t_model, m_model = t_ns["TinyLM"](vocab), m_ns["TinyLM"](vocab)
    _same_weights(t_model, m_model)
    return t_model, m_model


def test_language_model_adamw_groups_manual_warmup_and_clipping_match_torch(language_model, capsys):
    """nanoGPT's loop: configure_optimizers (decay for 2-D weights, none for biases and LayerNorms), the rate set
    through param_groups every iteration (linear warm-up, cosine decay), clip_grad_norm_, zero_grad(set_to_none)."""
    t_ns, m_ns = language_model
    t_model, m_model = _lm_pair(t_ns, m_ns)
    results = []
    for ns, model in ((t_ns, t_model), (m_ns, m_model)):
        args = ns["parse_args"]([])
        train_data, val_data, _ = ns["load_data"]()
        optimizer = model.configure_optimizers(args.weight_decay, args.learning_rate, (0.9, args.beta2))
        history = []
        results.append((history, ns["train"](args, model, optimizer, train_data, val_data, history)))
    _assert_20_losses(results[0][0], results[1][0])
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-3)
    assert capsys.readouterr().out.count("iter 15: loss") == 2


def test_language_model_resumes_from_its_checkpoint(language_model, tmp_path):
    """A checkpoint dict built first and then saved (nanoGPT), resumed with AdamW's moments: the run goes on as one."""
    _, m_ns = language_model
    path = str(tmp_path / "ckpt.pt")
    whole, _ = m_ns["main"](["--max-iters", "12"])
    first, _ = m_ns["main"](["--max-iters", "6", "--out", path])
    rest, _ = m_ns["main"](["--max-iters", "12", "--resume", path, "--seed", "5"])
    assert len(first) == len(rest) == 6
    np.testing.assert_allclose(first + rest, whole, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def gan():
    torch_ns, mlx_ns, code = converted_namespaces(FIXTURES / "gan.py")
    assert "nn.value_and_grad(generator, loss_fn)" in code and "nn.value_and_grad(discriminator, loss_fn)" in code, code
    return torch_ns, mlx_ns


def _gan_pair(t_ns, m_ns, args):
    import torch

    torch.manual_seed(0)
    pair = []
    for cls, extra in (("Generator", (args.latent_dim,)), ("Discriminator", ())):
        t_model, m_model = t_ns[cls](*extra), m_ns[cls](*extra)
        _same_weights(t_model, m_model)
        pair.append((t_model, m_model))
    return pair


def test_gan_generator_and_discriminator_steps_match_torch(gan, capsys):
    """Two optimizers in one loop body (generator step, then the discriminator on detached samples)."""
    t_ns, m_ns = gan
    args = t_ns["parse_args"]([])
    (t_g, m_g), (t_d, m_d) = _gan_pair(t_ns, m_ns, args)
    runs = []
    for ns, g, d in ((t_ns, t_g, t_d), (m_ns, m_g, m_d)):
        args = ns["parse_args"]([])
        loader = ns["DataLoader" if ns is t_ns else "ArrayLoader"](
            (ns["TensorDataset"] if ns is t_ns else ns["ArrayDataset"])(ns["make_points"](args.n_points)), batch_size=args.batch_size)
        history = []
        ns["train"](args, g, d, loader, ns["make_noise"](10, args.batch_size, args.latent_dim), history)
        runs.append(history)
    t_hist, m_hist = (np.array(h) for h in runs)
    assert t_hist.shape == m_hist.shape == (20, 2)
    _assert_20_losses(list(t_hist[:, 0]), list(m_hist[:, 0]))  # discriminator
    _assert_20_losses(list(t_hist[:, 1]), list(m_hist[:, 1]))  # generator
    assert capsys.readouterr().out.count("[Epoch 1/2] [Batch 5/10]") == 2


def test_gan_checkpoint_reloads(gan, tmp_path):
    _, m_ns = gan
    path = str(tmp_path / "gan.pt")
    trained = m_ns["main"](["--checkpoint", path])
    reloaded = m_ns["main"](["--checkpoint", path, "--seed", "3"])
    np.testing.assert_array_equal(np.array(reloaded), np.array(trained))
    saved = m_ns["load_checkpoint"](path)
    assert set(saved) == {"generator", "discriminator", "optimizer_G", "optimizer_D"} and "m" in saved["optimizer_D"]["model"]["layers"][0]["weight"]


@pytest.fixture(scope="module")
def wgan_gp():
    torch_ns, mlx_ns, code = converted_namespaces(FIXTURES / "wgan_gp.py")
    assert "gradients = mx.grad(grad_fn)(interpolates)" in code, code  # create_graph=True: no stop_gradient
    assert "(_, scores), input_grads = mx.value_and_grad(grad_fn)(points)" in code
    assert "grad, = (mx.stop_gradient(input_grads),)" in code
    return torch_ns, mlx_ns


def test_wgan_gp_gradient_penalty_and_saliency_match_torch(wgan_gp, capsys):
    """The critic's loss holds a gradient penalty (torch.autograd.grad with create_graph=True, differentiated again
    by the critic's step); the generator steps every n_critic iterations; then input-gradient saliency."""
    t_ns, m_ns = wgan_gp
    args = t_ns["parse_args"]([])
    (t_g, m_g), (t_d, m_d) = _gan_pair(t_ns, m_ns, args)
    runs = []
    for ns, g, d in ((t_ns, t_g, t_d), (m_ns, m_g, m_d)):
        args = ns["parse_args"]([])
        data = ns["make_data"](args.n_batches, args.batch_size, args.latent_dim)
        history = []
        assert ns["train"](args, g, d, data, history) == 20
        runs.append((history, ns["saliency"](d, data[0][0])))
    (t_hist, (t_sal, t_scores)), (m_hist, (m_sal, m_scores)) = runs
    _assert_20_losses(t_hist, m_hist)
    np.testing.assert_allclose(np.array(m_sal), t_sal.numpy(), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(np.array(m_scores), t_scores.numpy(), rtol=1e-3, atol=1e-6)
    assert capsys.readouterr().out.count("[Step 15/20]") == 2


def test_wgan_gp_penalty_alone_matches_torch(wgan_gp):
    """The penalty and its gradient with respect to the critic's weights (torch's double backward)."""
    import mlx.core as mx
    import mlx.nn as nn
    import torch

    t_ns, m_ns = wgan_gp
    torch.manual_seed(1)
    t_d, m_d = t_ns["Discriminator"](), m_ns["Discriminator"]()
    _same_weights(t_d, m_d)
    real, fake, alpha = (np.random.default_rng(0).standard_normal(s).astype(np.float32) for s in ((6, 2), (6, 2), (6, 1)))
    t_gp = t_ns["compute_gradient_penalty"](t_d, torch.from_numpy(real), torch.from_numpy(fake), torch.from_numpy(alpha))
    t_gp.backward()
    m_gp, m_grads = nn.value_and_grad(m_d, lambda: m_ns["compute_gradient_penalty"](m_d, mx.array(real), mx.array(fake), mx.array(alpha)))()
    np.testing.assert_allclose(m_gp.item(), t_gp.item(), rtol=1e-4)
    np.testing.assert_allclose(np.array(m_grads["model"]["layers"][0]["weight"]), t_d.model[0].weight.grad.numpy(), rtol=1e-3, atol=1e-6)


def test_wgan_gp_checkpoint_reloads(wgan_gp, tmp_path):
    _, m_ns = wgan_gp
    path = str(tmp_path / "wgan.pt")
    trained = m_ns["main"](["--checkpoint", path])
    reloaded = m_ns["main"](["--checkpoint", path, "--n_steps", "0", "--seed", "4"])
    np.testing.assert_array_equal(np.array(reloaded[0]), np.array(trained[0]))


@pytest.fixture(scope="module")
def finetune():
    torch_ns, mlx_ns, code = converted_namespaces(FIXTURES / "finetune.py")
    assert "        model.backbone.freeze()\n" in code and "optimizer_ft = optim.SGD(learning_rate=args.lr, momentum=0.9)" in code, code
    return torch_ns, mlx_ns


def test_finetune_frozen_backbone_matches_torch(finetune, capsys):
    """requires_grad = False over the backbone's parameters (-> freeze()), an optimizer over
    filter(lambda p: p.requires_grad, ...), the backbone in eval mode inside training, StepLR per epoch."""
    import torch

    t_ns, m_ns = finetune
    torch.manual_seed(0)
    t_model, m_model = t_ns["FineTuneNet"](4), m_ns["FineTuneNet"](4)
    t_model.backbone.bn1.running_mean.uniform_(-0.5, 0.5)  # "pretrained" statistics, kept by the frozen backbone
    _same_weights(t_model, m_model)
    backbone = {k: np.array(v) for k, v in m_model.backbone.parameters()["fc1"].items()}
    t_acc, t_hist = t_ns["main"]([], t_model)
    m_acc, m_hist = m_ns["main"]([], m_model)
    assert len(m_hist) == 24
    _assert_20_losses(t_hist, m_hist)
    np.testing.assert_allclose(m_hist, t_hist, rtol=1e-3, atol=1e-6)
    assert m_acc == t_acc
    for k, v in m_model.backbone.parameters()["fc1"].items():
        np.testing.assert_array_equal(np.array(v), backbone[k])  # frozen
    np.testing.assert_allclose(np.array(m_model.backbone.bn1.running_mean), t_model.backbone.bn1.running_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.array(m_model.head.weight), t_model.head.weight.detach().numpy(), rtol=1e-3, atol=1e-6)
    assert capsys.readouterr().out.count("Epoch 2/2") == 2


def test_finetune_checkpoint_reloads(finetune, tmp_path):
    _, m_ns = finetune
    path = str(tmp_path / "ft.pt")
    trained, _ = m_ns["main"](["--save", path])
    reloaded, _ = m_ns["main"](["--resume", path])
    assert reloaded == trained and m_ns["load_checkpoint"](path)["best_acc"] >= trained


@pytest.fixture(scope="module")
def regression_ema():
    torch_ns, mlx_ns, code = converted_namespaces(FIXTURES / "regression_ema.py")
    assert "self.ema.update(map_parameters(lambda v, model_v: (v * d + (1 - d) * mx.stop_gradient(model_v)) if" in code, code
    assert "msd = " not in code and "self.ema.freeze()" in code
    return torch_ns, mlx_ns


def test_regression_model_ema_matches_torch(regression_ema):
    """YOLOv5's ModelEMA (state_dict items, floating-point entries: BatchNorm statistics averaged too, the decay
    ramped by the update count): the losses of the model and of its EMA, and the EMA weights, follow torch's."""
    import torch

    t_ns, m_ns = regression_ema
    torch.manual_seed(0)
    t_model, m_model = t_ns["Regressor"](), m_ns["Regressor"]()
    _same_weights(t_model, m_model)
    t_val, t_hist = t_ns["main"]([], t_model)
    m_val, m_hist = m_ns["main"]([], m_model)
    t_hist, m_hist = np.array(t_hist), np.array(m_hist)
    assert t_hist.shape == m_hist.shape == (20, 2)
    _assert_20_losses(list(t_hist[:, 0]), list(m_hist[:, 0]))  # the model
    _assert_20_losses(list(t_hist[:, 1]), list(m_hist[:, 1]))  # its EMA
    np.testing.assert_allclose(m_val, t_val, rtol=1e-3)


def test_regression_ema_weights_after_20_updates_equal_torchs(regression_ema):
    import mlx.core as mx
    import torch
    from mlx.utils import tree_flatten

    t_ns, m_ns = regression_ema
    torch.manual_seed(1)
    t_model, m_model = t_ns["Regressor"](), m_ns["Regressor"]()
    _same_weights(t_model, m_model)
    t_args, m_args = t_ns["parse_args"]([]), m_ns["parse_args"]([])
    t_ema, m_ema = t_ns["ModelEMA"](t_model, 0.9, 5.0), m_ns["ModelEMA"](m_model, 0.9, 5.0)
    x, y = t_ns["make_data"](208)
    t_loader = t_ns["DataLoader"](t_ns["TensorDataset"](x[:160], y[:160]), batch_size=16)
    mx_x, mx_y = mx.array(x.numpy()), mx.array(y.numpy())
    m_loader = m_ns["ArrayLoader"](m_ns["ArrayDataset"](mx_x[:160], mx_y[:160]), batch_size=16)
    t_ns["train"](t_args, t_model, t_ema, t_loader, t_loader, [])
    m_ns["train"](m_args, m_model, m_ema, m_loader, m_loader, [])
    assert t_ema.updates == m_ema.updates == 20
    reference = m_ns["Regressor"]()
    load_torch_weights(reference, t_ema.ema.state_dict())  # torch's EMA weights in MLX's layout
    got = dict(tree_flatten(m_ema.ema.parameters()))
    want = dict(tree_flatten(reference.parameters()))
    assert set(got) == set(want) and any("running_mean" in k for k in got)
    for k in want:
        np.testing.assert_allclose(np.array(got[k]), np.array(want[k]), rtol=1e-4, atol=1e-6, err_msg=k)


def test_regression_ema_checkpoint_reloads(regression_ema, tmp_path):
    _, m_ns = regression_ema
    path = str(tmp_path / "ema.pt")
    trained, _ = m_ns["main"](["--save", path])
    reloaded, _ = m_ns["main"](["--weights", path])
    assert reloaded == pytest.approx(trained, rel=1e-6) and m_ns["load_checkpoint"](path)["updates"] == 20
