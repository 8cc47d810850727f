"""Ports of loopback servers: left out of cassette files and of matching.

A test records against a server it starts on ``127.0.0.1`` (a local model, a proxy, the
scripted server of :mod:`looplet.testing`), and the operating system picks a new port each
run. Written verbatim, the port would make re-recording an unchanged run rewrite every
request's URI, and a matcher on ``uri`` or ``port`` would refuse a replay against the next
run's server. So for a loopback host (``localhost``, ``*.localhost``, ``127.0.0.0/8``,
``::1``) the writer drops the port and the ``uri``, ``url`` and ``port`` matchers ignore it.
Any other host keeps its port: there it names a different service. Pure Python, no I/O.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["is_loopback", "without_loopback_port"]


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a URL's host name, without brackets or port) is this machine."""
    if not host:
        return False
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    if host.startswith("127.") or ":" in host:  # IPv4 loopback, or an IPv6 address
        import ipaddress

        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return False


def without_loopback_port(uri: str) -> str:
    """``uri`` without its port when its host is a loopback host; otherwise ``uri`` itself.

    ``http://127.0.0.1:52731/v1/chat/completions`` becomes
    ``http://127.0.0.1/v1/chat/completions``; a URI that does not parse is kept as it is.
    """
    parts = urlsplit(uri)
    if ":" not in parts.netloc.rpartition("@")[2].rpartition("]")[2]:
        return uri  # no port (the IPv6 brackets hold colons of their own)
    if not is_loopback(parts.hostname):
        return uri
    netloc = parts.netloc.rpartition(":")[0]
    return urlunsplit(parts._replace(netloc=netloc))
