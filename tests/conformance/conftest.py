"""Fixtures: one fake upstream per adapter on a real socket (per session), and a fresh
provider per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from llm_gateway.providers.base import Provider
from tests.conformance.adapters import ADAPTERS, AdapterSpec, FakeUpstream
from tests.fakes.server import run_server


@dataclass
class Upstream:
    spec: AdapterSpec
    fake: FakeUpstream
    url: str


@dataclass
class Harness:
    spec: AdapterSpec
    fake: FakeUpstream
    provider: Provider
    url: str

    @property
    def model(self) -> str:
        return self.spec.model

    def require(self, case: str) -> None:
        """Skip, saying why, when this adapter cannot support ``case``."""
        reason = self.spec.unsupported.get(case)
        if reason is not None:
            pytest.skip(f"{self.spec.id}: {reason}")


@pytest.fixture(scope="session", params=ADAPTERS, ids=[a.id for a in ADAPTERS])
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    spec: AdapterSpec = request.param
    fake = spec.make_fake()
    with run_server(fake) as server:
        yield Upstream(spec, fake, server.url)


@pytest.fixture
async def harness(upstream: Upstream) -> AsyncIterator[Harness]:
    upstream.fake.reset()
    provider = upstream.spec.make_provider(upstream.url, 5.0)
    try:
        yield Harness(upstream.spec, upstream.fake, provider, upstream.url)
    finally:
        await provider.aclose()
