"""The live engine: orders, positions, theos, guards and the journal, wired by runtime.py."""
