"""Facts about values that hold in one part of a function only (a comprehension's own names)."""
