"""The cassette file format: indented JSON, readable in review, fast to load, valid YAML.

A cassette is one JSON document::

    {
      "format": "looplet-cassette/1",
      "interactions": [
        {
          "request": {"method": "POST", "uri": "...", "headers": {...}, "body": {"json": {...}}},
          "response": {"status": {"code": 200, "message": "OK"}, "headers": {...},
                       "body": {"json": {...}}}
        }
      ]
    }

Bodies are stored decoded: a JSON body as the JSON itself (``{"json": ...}``, keys sorted),
multi-line text such as a server-sent-event stream as its lines (``{"lines": [...]}``), other
text as ``{"text": ...}``, and only bytes that are not UTF-8 as ``{"base64": ...}``. Headers
are sorted, one value or a list, without the ones that change on every call (the date,
request ids, rate-limit counters: :mod:`looplet.cassettes.volatile`). The file holds no
recording time or machine name either (git knows when a cassette changed), so re-recording
an unchanged run writes the same bytes, and a changed run gives a diff of the fields that
changed. A file holding such headers (an older one) loads and replays them. A JSON body is
replayed re-encoded compactly (``Content-Length`` follows); its meaning is kept, not its
exact bytes, so match it with ``json_body`` or vcrpy's ``body``, not ``raw_body``.

Why JSON, in a file that keeps the ``.yaml`` name the pytest plugin gives it: JSON is YAML
(any YAML reader loads these files), and ``json.loads`` reads a 200-exchange cassette
(0.9 MB) in about 3.5 ms, where libyaml's ``CSafeLoader`` takes 80 ms for vcrpy's own YAML
(39 ms with bodies as block scalars, 230 ms as nested YAML) and pure-Python YAML 460 ms.
Files in vcrpy's own formats (YAML or JSON, as pytest-recording writes them) load too, and
pydantic-ai's (vcrpy's YAML with JSON bodies as ``parsed_body``). Other tools' cassettes
(Ruby VCR, Betamax, HAR) and a newer looplet's are recognised and refused with what to do.

:func:`serialize` and :func:`deserialize` follow vcrpy's serializer interface, so this module
can be registered on a ``vcr.VCR``: ``my_vcr.register_serializer("looplet", serializer)``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlparse

from looplet.cassettes.loopback import without_loopback_port
from looplet.cassettes.matching import NOT_JSON, parse_json_body
from looplet.cassettes.volatile import DEFAULT_VOLATILE_HEADERS, VolatileHeaders
from looplet.errors import LoopletError

__all__ = [
    "FORMAT",
    "CassetteFormatError",
    "StoredExchange",
    "StoredRequest",
    "deserialize",
    "dump_interactions",
    "load_interactions",
    "serialize",
]

#: The ``format`` member that marks a looplet cassette.
FORMAT = "looplet-cassette/1"


class CassetteFormatError(LoopletError, ValueError):
    """The text is not a cassette; ``line``/``column`` (1-based) locate a syntax error.

    ``unsupported`` is ``(format, advice)`` when the text is a cassette of a format looplet
    recognises but does not replay (another tool's, or a newer looplet's).
    """

    def __init__(
        self,
        reason: str,
        line: int | None = None,
        column: int | None = None,
        *,
        unsupported: tuple[str, str] | None = None,
    ):
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column
        self.unsupported = unsupported


# -- writing ---------------------------------------------------------------------------------


def dump_interactions(
    interactions: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]],
    volatile_headers: Iterable[str] | VolatileHeaders = DEFAULT_VOLATILE_HEADERS,
    *,
    loopback_ports: bool = False,
) -> str:
    """The file text for ``(request, response)`` pairs in vcrpy's dict form.

    The same exchanges always give the same text: headers named by ``volatile_headers``
    (see :data:`~looplet.cassettes.volatile.DEFAULT_VOLATILE_HEADERS`) are left out, the
    rest and JSON bodies are sorted by name, and nothing about the recording itself (no
    time, no host name) is added. A loopback server's port is left out of the URI and the
    ``Host`` header (see :mod:`looplet.cassettes.loopback`) unless ``loopback_ports``: vcrpy's
    own matchers, when this module serves vcrpy, compare ports.
    """
    volatile = (
        volatile_headers
        if isinstance(volatile_headers, VolatileHeaders)
        else VolatileHeaders(volatile_headers)
    )
    document = {
        "format": FORMAT,
        "interactions": [
            {
                "request": _request_node(req, volatile, loopback_ports),
                "response": _response_node(resp, volatile),
            }
            for req, resp in interactions
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _request_node(
    request: Mapping[str, Any], volatile: VolatileHeaders, loopback_ports: bool
) -> dict[str, Any]:
    headers = _headers_node(request.get("headers") or {}, volatile)
    uri = request["uri"]
    if not loopback_ports:
        uri = without_loopback_port(uri)
        for name, value in headers.items():
            if name.lower() == "host" and isinstance(value, str):  # "127.0.0.1:52731"
                headers[name] = without_loopback_port(f"//{value}")[2:]
    return {
        "method": request["method"],
        "uri": uri,
        "headers": headers,
        "body": _body_node(request.get("body")),
    }


def _response_node(response: Mapping[str, Any], volatile: VolatileHeaders) -> dict[str, Any]:
    status = response.get("status") or {}
    return {
        "status": {"code": status.get("code"), "message": status.get("message") or ""},
        "headers": _headers_node(response.get("headers") or {}, volatile),
        "body": _body_node((response.get("body") or {}).get("string")),
    }


def _headers_node(headers: Mapping[str, Any], volatile: VolatileHeaders) -> dict[str, Any]:
    node: dict[str, Any] = {}
    # By lower-cased name, then as sent: the order never depends on the order received.
    for name in sorted(headers, key=lambda name: (name.lower(), name)):
        if volatile.drops(name):
            continue
        values = headers[name]
        values = list(values) if isinstance(values, list | tuple) else [values]
        values = [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]
        node[name] = values[0] if len(values) == 1 else values
    return node


def _body_node(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None or raw in (b"", ""):
        return None
    parsed = parse_json_body(raw)
    if parsed is not NOT_JSON:
        return {"json": _sorted(parsed)}
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    else:
        text = raw
    return {"lines": text.split("\n")} if "\n" in text else {"text": text}


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


# -- reading ---------------------------------------------------------------------------------


class StoredRequest:
    """A request read from a cassette, shaped like vcrpy's ``Request`` for its matchers.

    The body and headers are decoded on first use: replay matches on the key computed from
    :attr:`parsed`, so most loaded requests never need them.

    Attributes:
        method, uri, parsed_uri: as on vcrpy's ``Request``.
        parsed: the body parsed as JSON, or :data:`NOT_JSON`.
    """

    __slots__ = ("_body", "_headers", "_raw_headers", "method", "parsed", "parsed_uri", "uri")

    def __init__(
        self, method: str, uri: str, headers: Mapping[str, Any], body: Any, parsed: Any
    ) -> None:
        self.method = method
        self.uri = uri
        self.parsed_uri = urlparse(uri)
        self.parsed = parsed
        self._raw_headers = headers
        self._headers: Any = None
        self._body = body  # bytes, None, or the file's body node while not decoded

    @property
    def body(self) -> bytes | None:
        if isinstance(self._body, dict):
            self._body = _decode_body(self._body)
        body: bytes | None = self._body
        return body

    body_bytes = body

    @property
    def headers(self) -> Any:
        if self._headers is None:
            from vcr.request import HeadersDict

            self._headers = HeadersDict(
                {k: v if isinstance(v, str) else v[0] for k, v in self._raw_headers.items()}
            )
        return self._headers

    @property
    def scheme(self) -> str:
        return self.parsed_uri.scheme

    @property
    def host(self) -> str | None:
        return self.parsed_uri.hostname

    @property
    def port(self) -> int | None:
        port = self.parsed_uri.port
        return port if port is not None else {"https": 443, "http": 80}.get(self.scheme)

    @property
    def path(self) -> str:
        return self.parsed_uri.path

    @property
    def query(self) -> list[tuple[str, str]]:
        return sorted(parse_qsl(self.parsed_uri.query))


class StoredExchange:
    """One exchange read from a cassette: a :class:`StoredRequest` and its response.

    :meth:`response` decodes the response into vcrpy's dict form on first use.
    """

    __slots__ = ("_response", "request")

    def __init__(self, request: StoredRequest, response: dict[str, Any]) -> None:
        self.request = request
        self._response = response  # the file's node until decoded (marked by "looplet")

    def response(self) -> dict[str, Any]:
        """``{"status": {"code", "message"}, "headers": {name: [values]}, "body": {"string"}}``"""
        if "looplet" in self._response:
            self._response = _decode_response(self._response["looplet"])
        return self._response


def load_interactions(text: str) -> list[StoredExchange]:
    """The exchanges in a cassette's text: looplet's format, or vcrpy's YAML or JSON.

    The shape of every exchange is checked here, so a bad file fails when it is loaded,
    not halfway through a replay.

    Raises:
        CassetteFormatError: not JSON/YAML (with the line), or not shaped like a cassette.
    """
    document = _parse(text)
    unsupported = _unsupported(document)
    if unsupported is not None:
        raise CassetteFormatError(f"a {unsupported[0]}", unsupported=unsupported)
    if not isinstance(document, dict) or not isinstance(document.get("interactions"), list):
        raise CassetteFormatError("it has no 'interactions' list, so it is not a cassette")
    ours = document.get("format") == FORMAT
    loaded = []
    for number, item in enumerate(document["interactions"], start=1):
        try:
            loaded.append(_load_ours(item) if ours else _load_vcrpy(item))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CassetteFormatError(
                f"interaction {number} is malformed ({type(exc).__name__}: {exc})"
            ) from None
    return loaded


_RECORD_AGAIN = (
    "Record it again with looplet (delete it and run with record_mode='once', or "
    "pytest --looplet-record-mode=once); looplet also loads vcrpy's YAML and JSON "
    "cassettes (pytest-recording's) and pydantic-ai's."
)


def _unsupported(document: Any) -> tuple[str, str] | None:
    """``(format, advice)`` when ``document`` is a cassette looplet recognises but does not
    replay; ``None`` for anything else (a looplet or vcrpy cassette, or no cassette)."""
    if not isinstance(document, dict):
        return None
    kind = document.get("format")
    if isinstance(kind, str) and kind.startswith("looplet-cassette/") and kind != FORMAT:
        return (
            f"newer looplet cassette ({kind})",
            f"This looplet reads {FORMAT}: upgrade looplet (pip install -U looplet).",
        )
    if isinstance(document.get("http_interactions"), list):
        # Ruby's VCR and Python's Betamax write the same layout, in YAML or JSON.
        return "Ruby VCR or Betamax cassette (http_interactions)", _RECORD_AGAIN
    log = document.get("log")
    if isinstance(log, dict) and isinstance(log.get("entries"), list):
        return "HAR archive (log.entries, as browsers and proxies export)", _RECORD_AGAIN
    return None


def _parse(text: str) -> Any:
    if text.lstrip()[:1] == "{":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise CassetteFormatError(f"not valid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    # vcrpy's own YAML (pytest-recording writes it): its loader knows vcrpy's tags.
    from vcr.serializers import yamlserializer

    try:
        return yamlserializer.deserialize(text)
    except Exception as exc:  # yaml.YAMLError and the constructor errors of bad tags
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if mark is None:
            raise CassetteFormatError(f"not valid YAML: {problem}") from None
        raise CassetteFormatError(
            f"not valid YAML: {problem}", mark.line + 1, mark.column + 1
        ) from None


def _load_ours(item: Mapping[str, Any]) -> StoredExchange:
    request, response = item["request"], item["response"]
    body = _check_body(request.get("body"))
    parsed = body["json"] if body is not None and "json" in body else NOT_JSON
    if not isinstance(parsed, dict | list):
        parsed = NOT_JSON
    code = response["status"]["code"]
    if not isinstance(code, int):
        raise TypeError(f"response status code {code!r} is not a number")
    _check_headers(request["headers"])
    _check_headers(response["headers"])
    _check_body(response.get("body"))
    stored = StoredRequest(
        _str(request["method"]), _str(request["uri"]), request["headers"], body, parsed
    )
    return StoredExchange(stored, {"looplet": response})


def _check_headers(headers: Any) -> None:
    if not isinstance(headers, dict):
        raise TypeError(f"headers must be an object, not {type(headers).__name__}")
    # One pass over the values for the common case (all strings); names only on failure.
    if all(type(value) is str for value in headers.values()):
        return
    for name, value in headers.items():
        if not isinstance(value, str) and not (
            isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        ):
            raise TypeError(f"header {name!r} must be a string or a list of strings")


def _check_body(node: Any) -> Any:
    """``node`` if it is a valid body node; base64 is decoded now, to fail early."""
    if node is None:
        return None
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"a body must be null or one of {_BODY_KINDS}, got {node!r:.60}")
    kind, value = next(iter(node.items()))
    if kind == "lines" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return node
    if kind == "text" and isinstance(value, str):
        return node
    if kind == "json":
        return node
    if kind == "base64" and isinstance(value, str):
        return base64.b64decode(value, validate=True)
    raise ValueError(f"a body must be null or one of {_BODY_KINDS}, got {node!r:.60}")


_BODY_KINDS = "{'json': ...}, {'lines': [...]}, {'text': '...'}, {'base64': '...'}"


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _decode_body(node: Any) -> bytes | None:
    """The bytes of a body node checked by :func:`_check_body` (base64 already decoded)."""
    if node is None or isinstance(node, bytes):
        return node
    if "json" in node:
        return json.dumps(node["json"], ensure_ascii=False, separators=(",", ":")).encode()
    if "lines" in node:
        return "\n".join(node["lines"]).encode("utf-8")
    return str(node["text"]).encode("utf-8")


def _decode_response(node: Mapping[str, Any]) -> dict[str, Any]:
    status = node["status"]
    body_node = _check_body(node.get("body"))
    body = _decode_body(body_node) or b""
    headers = {k: [v] if isinstance(v, str) else list(v) for k, v in node["headers"].items()}
    if isinstance(body_node, dict) and "json" in body_node:
        for name in headers:  # re-encoded compactly: the length changed
            if name.lower() == "content-length":
                headers[name] = [str(len(body))]
    return {
        "status": {"code": status["code"], "message": status.get("message") or ""},
        "headers": headers,
        "body": {"string": body},
    }


def _load_vcrpy(item: Mapping[str, Any]) -> StoredExchange:
    request, response = item["request"], item["response"]
    if "parsed_body" in request:
        request = _from_parsed_body(request, response=False)
    if "parsed_body" in response:
        response = _from_parsed_body(response, response=True)
    body = request.get("body")
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = {str(k): v if isinstance(v, list) else [v] for k, v in request["headers"].items()}
    response = dict(response)
    if "body" in response and isinstance(response["body"].get("string"), str):
        response["body"] = {**response["body"], "string": response["body"]["string"].encode()}
    stored = StoredRequest(
        _str(request["method"]), _str(request["uri"]), headers, body or None, parse_json_body(body)
    )
    return StoredExchange(stored, response)


def _from_parsed_body(side: Mapping[str, Any], *, response: bool) -> dict[str, Any]:
    """A request or response of pydantic-ai's cassettes in vcrpy's own form.

    pydantic-ai's test suite stores a JSON body parsed (``parsed_body``) in place of vcrpy's
    ``body``, and only bodies it could parse, so decoded ones: the JSON's meaning is all
    there is to keep. The response's length is that of the body re-encoded, and a
    ``content-encoding`` left over from the wire no longer applies.
    """
    node = {key: value for key, value in side.items() if key != "parsed_body"}
    body = json.dumps(side["parsed_body"], ensure_ascii=False, separators=(",", ":"))
    if not response:
        node["body"] = body
        return node
    headers = {}
    for name, value in (side.get("headers") or {}).items():
        lower = str(name).lower()
        if lower == "content-encoding":
            continue
        headers[name] = [str(len(body.encode()))] if lower == "content-length" else value
    node["headers"] = headers
    node["body"] = {"string": body}
    return node


# -- vcrpy's serializer interface ------------------------------------------------------------


def serialize(cassette_dict: Mapping[str, Any]) -> str:
    """vcrpy's interface: the file text for ``{"interactions": [{"request", "response"}]}``.

    Volatile headers (:data:`~looplet.cassettes.volatile.DEFAULT_VOLATILE_HEADERS`) are left
    out here too; vcrpy's own ``filter_headers`` removes more. Ports are kept: vcrpy's
    default matchers compare them.
    """
    return dump_interactions(
        ((item["request"], item["response"]) for item in cassette_dict["interactions"]),
        loopback_ports=True,
    )


def deserialize(cassette_string: str) -> dict[str, Any]:
    """vcrpy's interface: ``{"version": 1, "interactions": [...]}`` from the file text."""
    interactions = [
        {
            "request": {
                "method": item.request.method,
                "uri": item.request.uri,
                "body": item.request.body,
                "headers": {k: [v] for k, v in item.request.headers.items()},
            },
            "response": item.response(),
        }
        for item in load_interactions(cassette_string)
    ]
    return {"version": 1, "interactions": interactions}
