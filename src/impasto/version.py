"""The package version: one place, read by pyproject.toml (setuptools dynamic version)."""

__version__ = "0.2.0"
