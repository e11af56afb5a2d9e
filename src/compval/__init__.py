"""compval: validate compressed models against the models they came from."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
