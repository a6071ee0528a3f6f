"""Access control and accounting around every call: who is calling, may they, what it cost.

``Gate.authenticate`` finds the caller (a virtual key, the admin key, or nobody in open
mode; ``gate.auth``); ``Gate.admit`` checks the model allow-list, reserves rate-limit
capacity and budget, and returns a ``Ticket``; ``Ticket.finish`` settles the reservations
(``gate.settle``) and emits the one ``UsageRecord`` of the request to every observer (the
ledger writer, the live status feed). ``gate.run`` runs an admitted call and always
finishes its ticket. Every inbound surface (OpenAI, Anthropic, /api/llm, WebSocket) goes
through it.
"""

from llm_gateway.gate.auth import Caller
from llm_gateway.gate.gate import Gate
from llm_gateway.gate.meter import StreamMeter
from llm_gateway.gate.ticket import Outcome, Ticket

__all__ = ["Caller", "Gate", "Outcome", "StreamMeter", "Ticket"]
