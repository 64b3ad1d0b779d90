"""The package version, in one place (``pyproject.toml`` reads it from ``xpnet``)."""

__version__ = "0.1.0"
