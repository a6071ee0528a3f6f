"""What the gateway knows about each model: context window, output cap, prices, capabilities.

The table ships as data (``llm_gateway/data/model_table.json``), keyed
``"<provider_type>/<model>"``, and a config's ``model_table:`` section extends or overrides it
field by field (``ModelTable.from_config``). Strategies use it to order routes by cost, to
pick routes that can serve a request (``model: auto``) and to find a larger context window;
the usage ledger uses ``ModelInfo.cost``.

Lookup normalises the model id, trying in turn: the id as given; for Bedrock, without a
cross-region inference-profile prefix (``us.``, ``eu.``, ``apac.``, ...); without a date
suffix (``gpt-4o-2024-08-06`` → ``gpt-4o``, ``claude-sonnet-4-5-20250929`` →
``claude-sonnet-4-5``); for Gemini, without the ``models/`` resource prefix. An exact entry
always wins, so a dated snapshot priced unlike its alias gets its own row. Matching is
case-insensitive. ``openai_compatible`` servers have no shipped rows: they match only what
the config adds. Results are memoised, so a lookup on the request path is one dict hit.

``ModelInfo`` here is the routing view of a model; ``core.types.ModelInfo`` is the unrelated
``/v1/models`` listing entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, TypeVar

import msgspec

from llm_gateway.core.types import Usage

if TYPE_CHECKING:
    from llm_gateway.config.schema import GatewayConfig, ModelTableEntryConfig

PER_TOKENS = 1_000_000
"""Prices are per this many tokens."""

BEDROCK_REGION_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.")
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_T = TypeVar("_T")
_S = TypeVar("_S", bound=msgspec.Struct)
_MEMO_LIMIT = 4096  # lookups are keyed by client-supplied model names: keep the memo bounded


class UnpricedModelError(ValueError):
    """``ModelInfo.cost`` was asked for a model whose input or output price is unknown."""


class Prices(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """USD per 1M tokens; None is unknown (or, for the cache prices, not separately billed)."""

    input: float | None = None
    output: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None


class LongContextPrices(Prices, frozen=True, forbid_unknown_fields=True):
    """Prices for the whole request once its prompt exceeds ``threshold`` tokens."""

    threshold: int = 0


class Capabilities(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a route can honour through this gateway; None is unknown.

    ``coding`` marks models a client looking for a coding model should be offered: models
    built for code (``*coder*``, Codestral, Devstral, ``gpt-*-codex``), every Claude model
    (Anthropic positions the family for code), and general models their vendor recommends
    for coding at ``prices_as_of`` (GPT-4.1, GPT-5 and GPT-5 mini, o3/o3-mini/o4-mini,
    Gemini 2.5 Pro, DeepSeek V3.2). It is set only where true. ``embeddings`` marks
    embedding models, which have no chat capability.
    """

    tools: bool | None = None
    vision: bool | None = None
    json_mode: bool | None = None
    reasoning: bool | None = None
    coding: bool | None = None
    embeddings: bool | None = None


_NO_PRICES = Prices()
_NO_CAPABILITIES = Capabilities()


class ModelInfo(msgspec.Struct, frozen=True):
    provider_type: str
    model: str
    context_window: int | None = None
    max_output_tokens: int | None = None
    prices: Prices = _NO_PRICES
    capabilities: Capabilities = _NO_CAPABILITIES
    long_context: LongContextPrices | None = None
    notes: str | None = None

    @property
    def key(self) -> str:
        return f"{self.provider_type}/{self.model}"

    @property
    def priced(self) -> bool:
        """Whether both the input and the output price are known."""
        return self.prices.input is not None and self.prices.output is not None

    def prices_for(self, prompt_tokens: int) -> Prices:
        """The price tier that applies to a request with ``prompt_tokens`` prompt tokens.

        ``prompt_tokens`` is the whole prompt, cache reads and writes included, which is
        what Anthropic's and Gemini's 200k thresholds count. A tier that leaves a cache
        price unset gets the base cache price scaled by the tier's input-price ratio
        (both vendors double cache prices with the input price); falling back to the
        tier's full input price would overcharge cached tokens tenfold.
        """
        tier = self.long_context
        if tier is None or prompt_tokens <= tier.threshold:
            return self.prices
        base = self.prices
        if (tier.cached_input is None and base.cached_input is not None) or (
            tier.cache_write is None and base.cache_write is not None
        ):
            if tier.input is None or not base.input:
                return tier
            ratio = tier.input / base.input
            return msgspec.structs.replace(
                tier,
                cached_input=_scaled(tier.cached_input, base.cached_input, ratio),
                cache_write=_scaled(tier.cache_write, base.cache_write, ratio),
            )
        return tier

    def cost(self, usage: Usage) -> float:
        """USD for ``usage``: cached prompt tokens at ``cached_input``, cache writes at
        ``cache_write``, the rest of the prompt at ``input``, and every completion token
        (reasoning included) at ``output``.

        A missing cache price falls back to the input price. Raises ``UnpricedModelError``
        when the input or output price is unknown (check ``priced`` first).

        ``usage`` is the normalised usage: every adapter counts cache reads and writes
        inside ``prompt_tokens`` (Anthropic and Bedrock report them outside; their wire
        modules add them) and reasoning inside ``completion_tokens`` (Gemini reports
        thoughts outside candidates), so no token is billed twice or missed. The table
        per provider is in docs/pricing.md; tests/unit/accounting/test_pricing.py pins it.
        """
        prices = self.prices_for(usage.prompt_tokens)
        price_in, price_out = prices.input, prices.output
        if price_in is None or price_out is None:
            raise UnpricedModelError(f"no input/output price known for '{self.key}'")
        cached = usage.cached_tokens
        written = usage.cache_write_tokens
        uncached = max(usage.prompt_tokens - cached - written, 0)
        price_cached = price_in if prices.cached_input is None else prices.cached_input
        price_write = price_in if prices.cache_write is None else prices.cache_write
        total = (
            uncached * price_in
            + cached * price_cached
            + written * price_write
            + usage.completion_tokens * price_out
        )
        return total / PER_TOKENS

    def estimate_cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for an uncached request of this size, or None when prices are unknown."""
        prices = self.prices_for(prompt_tokens)
        price_in, price_out = prices.input, prices.output
        if price_in is None or price_out is None:
            return None
        return (prompt_tokens * price_in + completion_tokens * price_out) / PER_TOKENS


def _scaled(own: float | None, base: float | None, ratio: float) -> float | None:
    if own is not None or base is None:
        return own
    return base * ratio


def usage_cost(usage: Usage, info: ModelInfo | None) -> float | None:
    """The charge for ``usage``: the provider's own figure when it reports one (OpenRouter),
    else the table's price, else None (unknown model or unknown prices)."""
    if usage.cost is not None:
        return usage.cost
    if info is None or not info.priced:
        return None
    return info.cost(usage)


# --- the shipped data ----------------------------------------------------------------------


class _Entry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    context_window: int | None = None
    max_output_tokens: int | None = None
    prices: Prices = _NO_PRICES
    capabilities: Capabilities = _NO_CAPABILITIES
    long_context: LongContextPrices | None = None
    notes: str | None = None


class _TableFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    prices_as_of: str
    models: dict[str, _Entry]
    currency: str = "USD"
    unit: str = "per 1M tokens"
    notes: list[str] = msgspec.field(default_factory=list)
    sources: dict[str, str] = msgspec.field(default_factory=dict)


DATA_PACKAGE = "llm_gateway"
DATA_PATH = ("data", "model_table.json")


def _split_key(key: str) -> tuple[str, str]:
    provider_type, sep, model = key.partition("/")
    if not sep or not provider_type or not model:
        raise ValueError(f"model table key {key!r} is not '<provider_type>/<model>'")
    return provider_type, model


def _info(key: str, entry: _Entry) -> ModelInfo:
    provider_type, model = _split_key(key)
    return ModelInfo(
        provider_type=provider_type,
        model=model,
        context_window=entry.context_window,
        max_output_tokens=entry.max_output_tokens,
        prices=entry.prices,
        capabilities=entry.capabilities,
        long_context=entry.long_context,
        notes=entry.notes,
    )


def load_table_bytes(data: bytes) -> ModelTable:
    """A table from the JSON shape of the shipped file (validated strictly)."""
    parsed = msgspec.json.decode(data, type=_TableFile)
    return ModelTable(
        (_info(key, entry) for key, entry in parsed.models.items()),
        prices_as_of=parsed.prices_as_of,
    )


@cache
def _shipped() -> ModelTable:
    resource = resources.files(DATA_PACKAGE).joinpath(*DATA_PATH)
    return load_table_bytes(resource.read_bytes())


# --- the table -----------------------------------------------------------------------------


def _candidates(provider_type: str, model: str) -> Iterable[str]:
    """Model ids to try for ``model``, most specific first (all lowercase)."""
    model = model.strip().lower()
    yield model
    if provider_type == "bedrock":
        for prefix in BEDROCK_REGION_PREFIXES:
            if model.startswith(prefix):
                model = model[len(prefix) :]
                yield model
                break
    elif provider_type == "gemini" and model.startswith("models/"):
        model = model[len("models/") :]
        yield model
    undated = _DATE_SUFFIX.sub("", model)
    if undated != model and undated:
        yield undated


class ModelTable:
    """Model facts keyed by provider type and model id; immutable once built."""

    def __init__(self, entries: Iterable[ModelInfo] = (), *, prices_as_of: str | None = None):
        self._entries: dict[tuple[str, str], ModelInfo] = {
            (info.provider_type.lower(), info.model.lower()): info for info in entries
        }
        self.prices_as_of = prices_as_of
        self._memo: dict[tuple[str, str], ModelInfo | None] = {}

    @classmethod
    def shipped(cls) -> ModelTable:
        """The table packaged with the gateway (loaded once per process)."""
        return _shipped()

    @classmethod
    def from_config(cls, config: GatewayConfig) -> ModelTable:
        """The shipped table with the config's ``model_table:`` section merged over it."""
        return cls.shipped().merged(config.model_table)

    def merged(self, overrides: Mapping[str, ModelTableEntryConfig]) -> ModelTable:
        """A new table with partial ``overrides`` merged over this one.

        A key that names an existing row (after normalisation, so ``openai/gpt-4o-2024-08-06``
        starts from ``openai/gpt-4o``) starts from that row, and only the fields the override
        sets replace it; the result is stored under the override's exact key. Other keys
        start empty: unset fields stay unknown.
        """
        if not overrides:
            return self
        entries = dict(self._entries)
        for key, override in overrides.items():
            provider_type, model = _split_key(key)
            base = self.get(provider_type, model) or ModelInfo(provider_type, model)
            info = _apply(base, override, provider_type, model)
            entries[(provider_type.lower(), model.strip().lower())] = info
        return ModelTable(entries.values(), prices_as_of=self.prices_as_of)

    def get(self, provider_type: str, model: str) -> ModelInfo | None:
        """The row for ``model`` served by a provider of ``provider_type``, or None."""
        memo_key = (provider_type, model)
        try:
            return self._memo[memo_key]
        except KeyError:
            pass
        ptype = provider_type.lower()
        found: ModelInfo | None = None
        for candidate in _candidates(ptype, model):
            found = self._entries.get((ptype, candidate))
            if found is not None:
                break
        if len(self._memo) < _MEMO_LIMIT:
            self._memo[memo_key] = found
        return found

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._entries.values())

    def entries(self) -> list[ModelInfo]:
        return list(self._entries.values())


def _apply(
    base: ModelInfo, override: ModelTableEntryConfig, provider_type: str, model: str
) -> ModelInfo:
    prices = _merge_struct(base.prices, override.prices.model_dump(exclude_none=True))
    capabilities = _merge_struct(
        base.capabilities, override.capabilities.model_dump(exclude_none=True)
    )
    long_context = base.long_context
    if override.long_context is not None:
        fields = override.long_context.model_dump(exclude_none=True)
        long_context = _merge_struct(long_context or LongContextPrices(), fields)
    return ModelInfo(
        provider_type=provider_type,
        model=model.strip(),
        context_window=_pick(override.context_window, base.context_window),
        max_output_tokens=_pick(override.max_output_tokens, base.max_output_tokens),
        prices=prices,
        capabilities=capabilities,
        long_context=long_context,
        notes=_pick(override.notes, base.notes),
    )


def _pick(value: _T | None, default: _T | None) -> _T | None:
    return default if value is None else value


def _merge_struct(base: _S, fields: Mapping[str, object]) -> _S:
    return msgspec.structs.replace(base, **fields) if fields else base
