"""Pure pricing math: fees, margin removal, consensus theo, quote tables, fill intensity.

Nothing here does I/O or reads a clock; every function is a function of its arguments.
"""
