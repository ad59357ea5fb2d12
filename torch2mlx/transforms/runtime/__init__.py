"""Module-level torch runtime values: `runtime-values` (values.py: `@torch.fx.wrap` decorators, `torch.jit.Final`
annotations, torch.utils.data base classes). The calls of the same family are rules
(rules/runtime_registrations.yaml, torch2mlx/handlers/runtime_registrations.py)."""
