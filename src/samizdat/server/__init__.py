"""The server: ``create_app`` wiring, the WebSocket gateway, HTTP API and use-case services.

Kept import-free so ``samizdat`` client commands do not load the server stack.
"""

__all__: list[str] = []
