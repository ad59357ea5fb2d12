"""JSON Schema of a rule file. The loader validates every file against it."""

PARAM_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "unsupported": {"type": "string", "description": "flag the call unless the argument is absent or equals the torch default"},
        "drop": {"type": "boolean", "description": "remove the argument (device, pin_memory, ...)"},
        "always_write": {"type": "boolean", "description": "the MLX default differs: write the torch default when the argument is absent"},
        "values": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "literal torch value (as source) -> MLX expression; any other value is flagged",
        },
        "require": {
            "enum": ["literal", "int_literal", "int_or_int_list_literal", "simple"],
            "description": "a predicate the argument must satisfy, else the call is flagged",
        },
        "why": {"type": "string"},
    },
}

EXAMPLE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["torch"],
    "properties": {
        "torch": {"type": "string"},
        "mlx": {"type": "string"},
        "flagged": {"type": "boolean"},
        "inputs": {"type": "object"},
        "compare": {"enum": ["values", "shape", "none"]},
        "annotate": {"type": "boolean"},
        "note": {"type": "string"},
        "module": {"type": "boolean", "description": "run `torch` at module level (statements only torch allows there, "
                   "e.g. torch.fx.wrap('f')); inputs are module globals, `out` is the result"},
    },
}

RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "status", "examples"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[A-Za-z_][\w.]*$"},
        "function": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
        "method": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
        "value": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
        "attribute": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
                      "description": "a Tensor attribute (x.data): the template's {input} is the tensor"},
        "ambiguous_method": {"type": "boolean"},
        "signature": {"type": "string"},
        "mlx": {"type": "string"},
        "variants": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["when", "mlx"],
                "properties": {
                    "when": {"type": "object", "additionalProperties": {"enum": ["present", "absent"]}},
                    "mlx": {"type": "string"},
                },
            },
        },
        "status": {"enum": ["exact", "conditional", "manual"]},
        "condition": {"type": "string", "description": "the predicate the engine checks (params/handler); unmet -> flagged"},
        "assumes": {"type": "string", "description": "what the translation assumes and cannot check; reported as an info diagnostic"},
        "why": {"type": "string"},
        "handler": {"type": "string"},
        "returns": {"enum": ["tensor", "other"]},
        "context": {"enum": ["annotation"], "description": "a value rule that applies only inside type annotations"},
        "namedtuple": {"type": "array", "items": {"type": "string"}},
        "params": {"type": "object", "additionalProperties": PARAM_SPEC},
        "notes": {"type": "string"},
        "examples": {"type": "array", "items": EXAMPLE},
    },
    "allOf": [
        {"anyOf": [{"required": ["function"]}, {"required": ["method"]}, {"required": ["value"]}, {"required": ["attribute"]}]},
        {"if": {"properties": {"status": {"const": "manual"}}}, "then": {"required": ["why"]}},
        {"if": {"properties": {"status": {"const": "conditional"}}}, "then": {"anyOf": [{"required": ["condition"]}, {"required": ["assumes"]}]}},
    ],
}

RULE_FILE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["rules"],
    "properties": {
        "description": {"type": "string"},
        "rules": {"type": "array", "items": RULE},
    },
}
