"""``POST /v1/chat/completions``: the OpenAI dialect's hooks of the shared chat skeleton."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from llm_gateway.api.asgi import Send, send_body
from llm_gateway.api.chat_endpoint import ChatEndpoint
from llm_gateway.api.errors import error_headers, openai_error_body
from llm_gateway.api.openai.convert import parse_request, response_to_wire
from llm_gateway.api.openai.stream import OpenAIStreamEncoder
from llm_gateway.core.errors import GatewayError
from llm_gateway.core.types import ChatRequest, ChatResponse

_encode = msgspec.json.encode


class ChatCompletions(ChatEndpoint):
    endpoint = "chat.completions"

    def parse(self, body: bytes) -> tuple[ChatRequest, Any]:
        return parse_request(body)  # (request, stream_options.include_usage)

    async def send_error(self, send: Send, error: GatewayError, rid: str) -> None:
        await send_body(send, error.status, openai_error_body(error), error_headers(error, rid))

    def render(self, response: ChatResponse, request: ChatRequest, rid: str) -> bytes:
        return _encode(response_to_wire(response, request.model))

    def stream_encoder(self, request: ChatRequest, rid: str, options: Any) -> OpenAIStreamEncoder:
        return OpenAIStreamEncoder(
            id=f"chatcmpl-{rid}",
            created=int(time.time()),
            model=request.model,
            include_usage=bool(options),
        )
