"""kmm_interactive: a Kalshi sports market maker run and steered from a Jupyter notebook."""

__version__ = "0.1.0"
