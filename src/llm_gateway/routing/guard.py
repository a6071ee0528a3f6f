"""Idle-gap and total-deadline enforcement for a stream after its first event.

Wrapping every ``__anext__`` in ``asyncio.timeout`` would allocate a timeout and a timer
handle per chunk; at tens of thousands of chunks per second that is measurable. Instead a
``GuardedStream`` keeps one timer per stream: each batch only stamps the loop time, and
the timer, when it fires, checks the stamp and either re-arms for the remaining time or
expires the stream. Expiry cancels the task consuming the stream and turns that
cancellation into the distinct timeout error (``IdleTimeoutError`` or
``TotalTimeoutError``), which the API layer renders as an in-stream error frame. The
cancellation also unwinds the provider's stream, which closes the upstream connection.

When the stream ends the guard reports its outcome to ``on_done`` (the router records
route latency and breaker outcomes there).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from llm_gateway.core.errors import GatewayError, IdleTimeoutError, TotalTimeoutError
from llm_gateway.core.events import StreamEvent


class GuardedStream:
    __slots__ = (
        "_deadline",
        "_done",
        "_expired",
        "_idle",
        "_inner",
        "_last",
        "_loop",
        "_on_done",
        "_task",
        "_timer",
        "provider",
    )

    def __init__(
        self,
        inner: AsyncIterator[list[StreamEvent]],
        *,
        idle_timeout: float | None,
        deadline: float | None,
        provider: str,
        on_done: Callable[[GatewayError | None], None] | None = None,
    ) -> None:
        self._inner = inner
        self._idle = idle_timeout
        self._deadline = deadline  # in loop time
        self._on_done = on_done
        self.provider = provider
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._task: asyncio.Task[object] | None = None
        self._expired: GatewayError | None = None
        self._done = False
        self._timer: asyncio.TimerHandle | None = None
        self._arm()

    def _next_check(self) -> float | None:
        checks = []
        if self._idle is not None:
            checks.append(self._last + self._idle)
        if self._deadline is not None:
            checks.append(self._deadline)
        return min(checks) if checks else None

    def _arm(self) -> None:
        when = self._next_check()
        self._timer = self._loop.call_at(when, self._check) if when is not None else None

    def _check(self) -> None:
        self._timer = None
        if self._done:
            return
        now = self._loop.time()
        if self._deadline is not None and now >= self._deadline:
            self._expire(
                TotalTimeoutError(
                    "the request's overall deadline passed while streaming",
                    provider=self.provider,
                )
            )
        elif self._idle is not None and now - self._last >= self._idle:
            self._expire(
                IdleTimeoutError(
                    f"the upstream sent nothing for {self._idle:g} s mid-stream",
                    provider=self.provider,
                )
            )
        else:
            self._arm()

    def _expire(self, error: GatewayError) -> None:
        self._expired = error
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def __aiter__(self) -> GuardedStream:
        return self

    async def __anext__(self) -> list[StreamEvent]:
        if self._task is None:
            self._task = asyncio.current_task()
        if self._expired is not None:
            raise self._expired
        try:
            batch = await self._inner.__anext__()
        except asyncio.CancelledError:
            expired = self._expired
            task = self._task
            if expired is not None and task is not None and task.cancelling():
                task.uncancel()
                self._finish(expired)
                raise expired from None
            raise
        except StopAsyncIteration:
            self._finish(None)
            raise
        except GatewayError as error:
            self._finish(error)
            raise
        self._last = self._loop.time()
        return batch

    def _finish(self, error: GatewayError | None) -> None:
        if self._done:
            return
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._on_done is not None:
            self._on_done(error)

    async def aclose(self) -> None:
        """Closes the provider stream (and its upstream connection)."""
        if not self._done:
            # Abandoned by the consumer (client gone): neither a success nor a failure.
            self._done = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        aclose = getattr(self._inner, "aclose", None)
        if aclose is not None:
            await aclose()
