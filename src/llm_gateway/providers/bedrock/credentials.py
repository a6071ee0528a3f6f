"""AWS credentials from the standard chain, without the AWS SDK.

Order (botocore's, which users expect; the first source that yields keys wins):

1. Keys in the gateway config (``access_key_id``/``secret_access_key``/``session_token``).
2. Environment: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``.
   Skipped when the config names a ``profile`` explicitly, as botocore does: an explicit
   profile must not be overridden by stray variables in the environment.
3. Shared files: ``~/.aws/credentials`` (``AWS_SHARED_CREDENTIALS_FILE``) then
   ``~/.aws/config`` (``AWS_CONFIG_FILE``, sections ``[profile NAME]`` / ``[default]``), for
   the config's ``profile``, else ``AWS_PROFILE``, else ``default``. Static keys only.
4. Container credentials (ECS task roles, EKS Pod Identity):
   ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (on 169.254.170.2) or
   ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (https, a loopback address, or the ECS/EKS agent
   addresses, as botocore allows), with ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` /
   ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` as the Authorization header; fetched with our own
   HTTP client and refreshed before they expire.

Gaps, named in the "no credentials" message so an operator is not left guessing: EC2
instance metadata (IMDS), ``role_arn``/``source_profile`` (STS AssumeRole),
``credential_process``, SSO and web-identity profiles are not resolved.

The sync sources (1-3) are read once when the provider is built; container credentials
need the event loop and are fetched on the first call. Finding nothing is not an error
until a call needs credentials; then it is a ``NoCredentialsError`` with a clear message.
"""

from __future__ import annotations

import asyncio
import configparser
import datetime as dt
import ipaddress
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from llm_gateway.http.client import HttpClient
from llm_gateway.http.errors import HttpError

__all__ = ["CredentialChain", "Credentials", "NoCredentialsError"]

_ECS_HOST = "169.254.170.2"
_CONTAINER_HOSTS = frozenset({_ECS_HOST, "169.254.170.23", "fd00:ec2::23", "localhost"})
# Refresh this long before expiry (a request signed now must still be valid when the
# upstream checks it), and stop using credentials this close to it.
_ADVISORY_REFRESH = 300.0
_MANDATORY_REFRESH = 60.0
_UNSUPPORTED_PROFILE_KEYS = (
    "role_arn",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
)


class NoCredentialsError(Exception):
    """No source of the chain produced credentials; the message says what was tried."""


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expiration: float | None = None  # epoch seconds; None for long-term keys
    source: str = "config"

    def __repr__(self) -> str:  # never print the secret or the token
        return f"Credentials({self.access_key_id[:4]}…, source={self.source!r})"

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        if self.expiration is None:
            return False
        return self.expiration - (time.time() if now is None else now) < seconds


def _nonempty(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def _from_env(environ: Mapping[str, str]) -> Credentials | None:
    key = _nonempty(environ.get("AWS_ACCESS_KEY_ID"))
    secret = _nonempty(environ.get("AWS_SECRET_ACCESS_KEY"))
    if not key or not secret:
        return None
    token = _nonempty(environ.get("AWS_SESSION_TOKEN")) or _nonempty(
        environ.get("AWS_SECURITY_TOKEN")  # the legacy name botocore still reads
    )
    return Credentials(key, secret, token, source="environment")


def _read_ini(path: Path) -> configparser.RawConfigParser | None:
    parser = configparser.RawConfigParser()
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        return None
    except (OSError, configparser.Error, UnicodeDecodeError):
        # A broken file is reported as "nothing found there" with the rest of the chain
        # still tried; the final message names the file.
        return None
    return parser


def _section_credentials(
    parser: configparser.RawConfigParser, section: str, source: str
) -> tuple[Credentials | None, list[str]]:
    if not parser.has_section(section):
        return None, []
    items = dict(parser.items(section))
    key = _nonempty(items.get("aws_access_key_id"))
    secret = _nonempty(items.get("aws_secret_access_key"))
    if key and secret:
        token = _nonempty(items.get("aws_session_token")) or _nonempty(
            items.get("aws_security_token")
        )
        return Credentials(key, secret, token, source=source), []
    return None, [k for k in _UNSUPPORTED_PROFILE_KEYS if k in items]


def _parse_expiration(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _container_url_allowed(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    host = parts.hostname
    if host in _CONTAINER_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CredentialChain:
    """Resolves and caches credentials; ``get()`` refreshes expiring ones."""

    def __init__(
        self,
        *,
        explicit: Credentials | None = None,
        profile: str | None = None,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
        container_timeout: float = 2.0,
    ) -> None:
        self._explicit = explicit
        self._profile = profile
        self._environ = dict(os.environ if environ is None else environ)
        self._home = home if home is not None else Path.home()
        self._container_timeout = container_timeout
        self._cached: Credentials | None = None
        self._tried: list[str] = []
        self._lock: asyncio.Lock | None = None
        self._static_done = False

    # --- sources -------------------------------------------------------------------------

    def resolve_static(self) -> Credentials | None:
        """Config, environment and shared files; no I/O beyond reading two small files."""
        self._static_done = True
        tried = self._tried = []
        if self._explicit is not None:
            self._cached = self._explicit
            return self._explicit
        tried.append("config keys (access_key_id/secret_access_key)")
        env = self._environ
        if self._profile is None:
            found = _from_env(env)
            if found is not None:
                self._cached = found
                return found
            tried.append("environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
        profile = self._profile or _nonempty(env.get("AWS_PROFILE")) or "default"
        found = self._from_files(profile, tried)
        if found is not None:
            self._cached = found
        return found

    def _expand(self, value: str) -> Path:
        # "~" means the chain's home (a test's temporary HOME), not the process's.
        if value.startswith("~"):
            return self._home / value[1:].lstrip("/\\")
        return Path(value)

    def _from_files(self, profile: str, tried: list[str]) -> Credentials | None:
        env = self._environ
        creds_path = self._expand(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")
        config_path = self._expand(env.get("AWS_CONFIG_FILE") or "~/.aws/config")
        unsupported: list[str] = []
        parser = _read_ini(creds_path)
        if parser is not None:
            found, keys = _section_credentials(
                parser, profile, f"shared credentials file [{profile}]"
            )
            if found is not None:
                return found
            unsupported += keys
        parser = _read_ini(config_path)
        if parser is not None:
            section = profile if profile == "default" else f"profile {profile}"
            found, keys = _section_credentials(parser, section, f"config file [{section}]")
            if found is not None:
                return found
            unsupported += keys
        note = f"shared files {creds_path} / {config_path} (profile '{profile}')"
        if unsupported:
            note += f" — uses {', '.join(sorted(set(unsupported)))}, which is not supported"
        tried.append(note)
        return None

    def _container_source(self) -> tuple[str, dict[str, str]] | None:
        env = self._environ
        relative = _nonempty(env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"))
        full = _nonempty(env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
        if relative is not None:
            url = f"http://{_ECS_HOST}{relative if relative.startswith('/') else '/' + relative}"
        elif full is not None:
            url = full
        else:
            return None
        headers: dict[str, str] = {}
        token: str | None = None
        token_file = _nonempty(env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"))
        if token_file is not None:
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise NoCredentialsError(
                    f"cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {token_file}: {exc}"
                ) from exc
        else:
            token = _nonempty(env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
        if token is not None:
            if "\r" in token or "\n" in token:
                raise NoCredentialsError("the container authorization token has a line break")
            headers["Authorization"] = token
        return url, headers

    async def _from_container(self, url: str, headers: dict[str, str]) -> Credentials:
        if not _container_url_allowed(url):
            raise NoCredentialsError(
                f"container credentials URL {url} is not https, loopback or a container "
                "agent address"
            )
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        client = HttpClient(
            f"{parts.scheme}://{parts.netloc}",
            connect_timeout=self._container_timeout,
            read_timeout=self._container_timeout,
            max_connections=1,
        )
        try:
            response = await client.request("GET", target, headers=headers)
        except HttpError as exc:
            raise NoCredentialsError(f"container credentials from {url}: {exc.message}") from exc
        finally:
            await client.aclose()
        if response.status != 200:
            raise NoCredentialsError(
                f"container credentials from {url}: HTTP {response.status} "
                f"{response.body[:200].decode('utf-8', 'replace')}"
            )
        try:
            data = msgspec.json.decode(response.body)
            key, secret = data["AccessKeyId"], data["SecretAccessKey"]
        except (msgspec.DecodeError, KeyError, TypeError) as exc:
            raise NoCredentialsError(
                f"container credentials from {url}: unexpected answer ({exc})"
            ) from exc
        if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
            raise NoCredentialsError(f"container credentials from {url}: empty keys")
        token = data.get("Token")
        return Credentials(
            key,
            secret,
            token if isinstance(token, str) and token else None,
            expiration=_parse_expiration(data.get("Expiration")),
            source="container",
        )

    # --- the public face -----------------------------------------------------------------

    def _missing(self, extra: str | None = None) -> NoCredentialsError:
        tried = "; ".join(self._tried)
        message = (
            f"no AWS credentials found (tried: {tried}; container credentials "
            "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/_FULL_URI) not set). EC2 instance "
            "metadata (IMDS), AssumeRole, credential_process and SSO profiles are not "
            "supported: set keys in the config or the environment"
        )
        if extra:
            message = f"{extra}; {message}"
        return NoCredentialsError(message)

    async def get(self) -> Credentials:
        """Current credentials, refreshing ones that expire within a few minutes.

        Cheap on the hot path: a cached long-term key is returned without awaiting.
        """
        cached = self._cached
        if cached is not None and not cached.expires_within(_ADVISORY_REFRESH):
            return cached
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # Another task may have refreshed while this one waited for the lock.
            cached = self._cached
            if cached is not None and not cached.expires_within(_ADVISORY_REFRESH):
                return cached
            if not self._static_done:
                found = self.resolve_static()
                if found is not None and not found.expires_within(_ADVISORY_REFRESH):
                    return found
            source = self._container_source()
            if source is None:
                if cached is not None and not cached.expires_within(_MANDATORY_REFRESH):
                    return cached
                raise self._missing()
            try:
                fresh = await self._from_container(*source)
            except NoCredentialsError as exc:
                # Keep serving credentials that are still valid if a refresh fails.
                if cached is not None and not cached.expires_within(_MANDATORY_REFRESH):
                    return cached
                raise self._missing(str(exc)) from exc
            self._cached = fresh
            return fresh
