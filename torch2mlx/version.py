"""The package version: a leaf module, so that anything (the cache key, SARIF) can read it without importing the package facade."""

__version__ = "0.1.0"
