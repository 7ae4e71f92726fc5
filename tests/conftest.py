"""Shared test settings: hypothesis runs deterministically and without per-example deadlines
(CI machines are slow and shared)."""

from hypothesis import settings

settings.register_profile("kmm", deadline=None, derandomize=True, max_examples=150)
settings.load_profile("kmm")
