"""The Kalshi Trade API v2 client: request signing, REST, WebSocket, local order books.

Never imported by ``sim/``: the embedded exchange and this client are two independent sides
of one protocol, each checked against Kalshi's published specs.
"""
