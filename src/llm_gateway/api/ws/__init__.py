"""WebSocket surfaces of the gateway."""
