"""Diagnostics: what the converter found and left, with a stable id and a position."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(str, enum.Enum):
    INFO = "info"        # done, but worth knowing (e.g. a dropped device argument)
    WARNING = "warning"  # left in place: the user must translate it by hand
    ERROR = "error"      # the file could not be converted at all


class Kind(str, enum.Enum):
    UNSUPPORTED_ARG = "unsupported-arg"
    NO_EQUIVALENT = "no-equivalent"
    SEMANTICS_DIFFER = "semantics-differ"
    UNKNOWN_API = "unknown-api"
    UNKNOWN_RECEIVER = "unknown-receiver"
    NEEDS_REVIEW = "needs-review"
    BAD_INPUT = "bad-input"
    INTERNAL = "internal-error"


@dataclass
class Finding:
    """What the pass records while converting (a `Diagnostic` once its position is known)."""

    node: object             # the original libcst node, for its position
    rule_id: str
    kind: str
    message: str
    severity: str = "warning"
    inside_args: tuple = ()  # ids of the original argument values that enclose the node
    statement: object = None  # the innermost original statement around the node
    table_id: str = ""       # the rule table's id where `rule_id` names what the user wrote instead (rewriter.flag)


@dataclass(frozen=True)
class Diagnostic:
    """One finding. Lines and columns are 1-based, as editors show them."""

    rule_id: str
    kind: Kind
    severity: Severity
    message: str
    path: str = "<string>"
    line: int = 0
    column: int = 0
    # the id of the table's rule that made it where `rule_id` shows the name the user wrote instead
    # (`torch.TypedTensor.construct` for `torch.IntTensor(n, 2)`): configuration select / ignore match both
    table_id: str = field(default="", compare=False)

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"

    def format(self) -> str:
        return f"{self.location}: {self.severity.value}: {self.rule_id}: {self.message} [{self.kind.value}]"

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "rule_id": self.rule_id,
            "kind": self.kind.value,
            "severity": self.severity.value,
            "message": self.message,
        }


class InputError(Exception):
    """Bad input the user must fix (syntax error, undecodable bytes). Carries a position."""

    def __init__(self, message: str, path: str = "<string>", line: int = 0, column: int = 0):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = self.path if not self.line else f"{self.path}:{self.line}:{self.column}"
        return f"{where}: {self.message}"
