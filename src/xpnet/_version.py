"""The package version, in one place: ``pyproject.toml`` reads it from here and
``xpnet.__version__`` re-exports it."""

__version__ = "0.1.0"
