"""One provider SDK client per worker process and configuration, shared by its evals.

Building an ``openai.OpenAI`` or ``anthropic.Anthropic`` client costs about 20 ms, most of it
the SSL context of its HTTP client, loaded with the system's CA certificates: a fifth of a
replayed 10-turn eval when every eval built its own. :class:`SDKClients` keeps one client per
configuration for the whole session (per xdist worker: each is its own process) and closes
them when the session ends; ``looplet_llm`` asks it for the eval's client.

Sharing a client shares nothing of a cassette: vcrpy patches the HTTP transport *classes*
while a cassette is active, not a client, so a shared client's requests go to whichever
cassette the running eval opened (``tests/test_plugin_clients.py`` replays evals with
different cassettes through one client, at ``-n 0`` and ``-n 2``). What a client could carry
from one eval to the next is put back as a new client has it when handed out: its cookie jar
is emptied, and a client that an eval closed is replaced.

The configuration is everything a client reads when it is built: the provider, the API key
and base URL it is given, the record/replay choice, and the environment variables the SDK
(``OPENAI_*`` / ``ANTHROPIC_*``) and its HTTP client (proxies, ``SSL_CERT_FILE``,
``SSL_CERT_DIR``) read; an eval that changes one of them gets a client of its own.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import Any

__all__ = ["SDKClients"]

# The HTTP client reads these (besides every ``*_proxy`` variable) when it is built.
_HTTP_ENV = frozenset({"SSL_CERT_FILE", "SSL_CERT_DIR", "NO_PROXY", "no_proxy"})


class SDKClients:
    """The SDK clients of one session, by configuration (see the module docstring).

    Attributes:
        built: how many clients were built; the evals of a session with one configuration
            build one.
    """

    def __init__(self, limit: int = 8) -> None:
        self._clients: dict[Hashable, Any] = {}
        self._limit = limit
        self.built = 0

    def get(self, provider: str, api_key: str, base_url: str | None) -> Any:
        """The client for ``provider`` (``"openai"`` or ``"anthropic"``) with this key and
        base URL in the current environment: the one already built, or a new one.

        Its retries are off (``max_retries=0``): looplet's backends retry themselves.
        """
        key = (provider, api_key, base_url, _environment(provider))
        client = self._clients.get(key)
        if client is not None and not client.is_closed():
            _forget_cookies(client)
            return client
        self._clients.pop(key, None)
        if len(self._clients) >= self._limit:
            # An environment that changes every eval must not pile up open clients.
            oldest = next(iter(self._clients))
            self._clients.pop(oldest).close()
        client = _build(provider, api_key, base_url)
        self.built += 1
        self._clients[key] = client
        return client

    def close(self) -> None:
        """Close every client (the session ended)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def _environment(provider: str) -> tuple[tuple[str, str], ...]:
    prefix = f"{provider.upper()}_"
    return tuple(
        sorted(
            (name, value)
            for name, value in os.environ.items()
            if name.startswith(prefix) or name in _HTTP_ENV or name.lower().endswith("_proxy")
        )
    )


def _build(provider: str, api_key: str, base_url: str | None) -> Any:
    if provider == "anthropic":
        import anthropic

        return anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0)
    import openai

    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0)


def _forget_cookies(client: Any) -> None:
    # The SDK's HTTP client keeps the cookies responses set (a provider's load balancer
    # does); a client built for this eval would have none.
    cookies = getattr(getattr(client, "_client", None), "cookies", None)
    if cookies:
        cookies.clear()
