"""Access control and accounting around every call: who is calling, may they, what it cost.

``Gate.authenticate`` finds the caller (a virtual key, the admin key, or nobody in open
mode); ``Gate.admit`` checks the model allow-list, reserves rate-limit capacity and budget,
and returns a ``Ticket``; ``Ticket.finish`` settles the reservations and emits the one
``UsageRecord`` of the request to every observer (the ledger writer, the live status
feed). Every inbound surface (OpenAI, Anthropic, /api/llm, WebSocket) goes through it.
"""

from llm_gateway.gate.gate import Caller, Gate, Outcome, Ticket
from llm_gateway.gate.meter import StreamMeter

__all__ = ["Caller", "Gate", "Outcome", "StreamMeter", "Ticket"]
