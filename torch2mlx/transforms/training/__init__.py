"""Training scripts: `train-step` (step.py, with scan.py: which model an optimizer updates),
`lr-schedule` (sched.py), `no-grad` (nograd.py), `autocast` and `grad-scaler` (misc.py)."""
