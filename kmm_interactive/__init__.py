"""kmm_interactive: a Kalshi sports market maker run and steered from a Jupyter notebook.

``from kmm_interactive import Session`` is the notebook's entry point (session.py); it is
imported on first use, so that ``kmm --version`` and the pure layers stay light.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Session", "__version__"]

if TYPE_CHECKING:
    from kmm_interactive.session import Session


def __getattr__(name: str) -> Any:
    if name == "Session":
        from kmm_interactive.session import Session

        return Session
    raise AttributeError(f"module 'kmm_interactive' has no attribute {name!r}")
