"""The loopback server rejects what Anthropic's Messages API rejects, with its 400s."""

from __future__ import annotations

import http.client
import json
from typing import Any

import anthropic
import pytest

from looplet.testing import ScriptedModelServer
from tests._anthropic import API_KEY, HELLO_PARAMS, MODEL, client_for, create, raw_post


def _tool_use(tool_id: str, name: str = "greet") -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": {"name": "Alice"}}


def _tool_result(tool_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": "Hello, Alice!"}


ASSISTANT_CALLS: dict[str, Any] = {
    "role": "assistant",
    "content": [_tool_use("toolu_a"), _tool_use("toolu_b")],
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": MODEL, "messages": HELLO_PARAMS}, "max_tokens: Field required"),
        ({"max_tokens": 5, "messages": HELLO_PARAMS}, "model: Field required"),
        ({"model": MODEL, "max_tokens": 5, "messages": []}, "non-empty array"),
        (
            {
                "model": MODEL,
                "max_tokens": 5,
                "messages": [{"role": "system", "content": "Be brief."}, *HELLO_PARAMS],
            },
            "top-level `system` parameter",
        ),
        (
            {"model": MODEL, "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]},
            'the first message must use the "user" role',
        ),
        (
            {"model": MODEL, "max_tokens": 5, "messages": [*HELLO_PARAMS, *HELLO_PARAMS]},
            "roles must alternate",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 5,
                "messages": [*HELLO_PARAMS, ASSISTANT_CALLS, {"role": "user", "content": "and?"}],
            },
            "`tool_use` ids were found without `tool_result` blocks immediately after: "
            "toolu_a, toolu_b",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 5,
                "messages": [
                    *HELLO_PARAMS,
                    ASSISTANT_CALLS,
                    {"role": "user", "content": [_tool_result("toolu_a")]},
                ],
            },
            "without `tool_result` blocks immediately after: toolu_b;",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 5,
                "messages": [
                    *HELLO_PARAMS,
                    ASSISTANT_CALLS,
                    {
                        "role": "user",
                        "content": [
                            _tool_result("toolu_a"),
                            _tool_result("toolu_b"),
                            _tool_result("toolu_zzz"),
                        ],
                    },
                ],
            },
            "unexpected `tool_use_id` found in `tool_result` blocks: toolu_zzz",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 5,
                "messages": [
                    *HELLO_PARAMS,
                    ASSISTANT_CALLS,
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "Results:"},
                            _tool_result("toolu_a"),
                            _tool_result("toolu_b"),
                        ],
                    },
                ],
            },
            "`tool_result` blocks must come first",
        ),
        (
            {"model": MODEL, "max_tokens": 5, "messages": [*HELLO_PARAMS, ASSISTANT_CALLS]},
            "the conversation ends there",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 5,
                "messages": HELLO_PARAMS,
                "tools": [{"name": "greet"}],
            },
            "tools.0.input_schema: Field required",
        ),
    ],
)
def test_broken_requests_get_anthropic_style_400(body: Any, expected: str) -> None:
    with ScriptedModelServer(["unused"]) as server:
        status, _, raw = raw_post(server, body)
        assert server.served == 0

    error = json.loads(raw)
    assert status == 400
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert expected in error["error"]["message"]


def test_sdk_raises_bad_request_for_an_unanswered_tool_use() -> None:
    messages: list[Any] = [*HELLO_PARAMS, ASSISTANT_CALLS, {"role": "user", "content": "and?"}]
    with (
        ScriptedModelServer(["unused"]) as server,
        client_for(server, max_retries=0) as client,
        pytest.raises(anthropic.BadRequestError, match="toolu_a, toolu_b") as info,
    ):
        create(client, messages=messages)

    assert "messages.1" in str(info.value)


def test_missing_anthropic_version_header_is_rejected() -> None:
    with ScriptedModelServer(["unused"]) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        body = json.dumps({"model": MODEL, "max_tokens": 5, "messages": HELLO_PARAMS})
        conn.request("POST", "/v1/messages", body=body)
        response = conn.getresponse()
        error = json.loads(response.read())
        conn.close()

    assert response.status == 400
    assert error["error"]["message"] == "anthropic-version: header is required"


def test_well_formed_tool_round_trip_with_context_text_is_accepted() -> None:
    messages: list[Any] = [
        *HELLO_PARAMS,
        ASSISTANT_CALLS,
        {
            "role": "user",
            "content": [
                _tool_result("toolu_b"),
                {**_tool_result("toolu_a"), "is_error": True},
                {"type": "text", "text": "Remember to be polite."},
            ],
        },
    ]
    with ScriptedModelServer(["fine"]) as server, client_for(server, max_retries=0) as client:
        message = create(client, messages=messages, system=[{"type": "text", "text": "Sys"}])

    assert message.content[0].text == "fine"


def test_anthropic_base_url_with_v1_gets_a_404_that_says_so() -> None:
    with (
        ScriptedModelServer(["unused"]) as server,
        anthropic.Anthropic(base_url=server.base_url, api_key=API_KEY, max_retries=0) as client,
        pytest.raises(anthropic.NotFoundError, match=r"pass server\.url \(no /v1\)"),
    ):
        create(client)
