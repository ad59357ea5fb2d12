"""Weight initialisation: `nn-init` (nn_init.py; what it reads: apply.py, calls.py, classes.py, layers.py,
literals.py, methods.py)."""
