"""The classes a scheduler stepped away from its optimizer's updates becomes (written into the output once).

`LRScheduler(optimizer, schedule)` holds an MLX schedule of the scheduler's own step count:
`step()` advances the count and sets `optimizer.learning_rate`, exactly when and to what the
torch scheduler sets the parameter groups' `lr` (per-epoch schedules, `get_last_lr()`,
`state_dict()` keep working). `ReduceLROnPlateau` repeats torch's rules (mode, threshold,
patience, cooldown, min_lr, eps) on the optimizer's `learning_rate`.
"""
from __future__ import annotations

LR_SCHEDULER = '''
class LRScheduler:
    """A learning-rate scheduler stepped by the script: step() counts and sets optimizer.learning_rate
    to schedule(base_lr)(count); the count starts at 0 when it is built, as the original's did."""

    def __init__(self, optimizer, schedule):
        self.optimizer = optimizer
        self.schedule = schedule
        self.groups = getattr(optimizer, "group_optimizers", [optimizer])  # one per parameter group
        self.base_lrs = [group.learning_rate.item() for group in self.groups]
        self.last_epoch = 0
        self._set()

    def _set(self):
        for group, base_lr in zip(self.groups, self.base_lrs):
            group.learning_rate = self.schedule(base_lr)(mx.array(self.last_epoch))
        self._last_lr = [group.learning_rate.item() for group in self.groups]

    def step(self, epoch=None):
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        self._set()

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch}

    def load_state_dict(self, state):
        self.base_lrs, self.last_epoch = list(state["base_lrs"]), state["last_epoch"]
        self._set()
'''

REDUCE_ON_PLATEAU = '''
class ReduceLROnPlateau:
    """Lowers optimizer.learning_rate by `factor` once a metric has not improved for `patience` steps."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.min_lr, self.eps = cooldown, min_lr, eps
        self.best = float("inf") if mode == "min" else float("-inf")
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self.groups = getattr(optimizer, "group_optimizers", [optimizer])  # one per parameter group
        self._last_lr = [group.learning_rate.item() for group in self.groups]

    def is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def step(self, metrics):
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group in self.groups:
                old = group.learning_rate.item()
                new = max(old * self.factor, self.min_lr)
                if old - new > self.eps:
                    group.learning_rate = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group.learning_rate.item() for group in self.groups]

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "groups")}

    def load_state_dict(self, state):
        self.__dict__.update(state)
'''

PLATEAU_ARGS = ("optimizer", "mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps")
