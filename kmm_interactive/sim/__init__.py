"""The other side of the wire: a Kalshi-compatible exchange and an Odds-API feed on loopback.

Nothing here imports ``kmm_interactive.kalshi``: the simulator and the client are two
independent implementations of one protocol, each checked against ``specs/``.
"""
