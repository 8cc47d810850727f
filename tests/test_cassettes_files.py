"""The cassette file: readable, stable across re-recordings, and clear errors when broken."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import vcr
import yaml

from looplet.cassettes import CassetteCorruptError, serializer, use_cassette
from looplet.errors import MissingExtraError
from looplet.testing import ScriptedModelServer, call, error_reply, text_reply, tool_reply


def ask(base_url: str, question: str) -> str:
    with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
    return completion.choices[0].message.content or ""


@pytest.fixture
def cassette(tmp_path: Path) -> tuple[Path, str]:
    """A cassette of two exchanges (a tool call, then text), and the stopped server's URL."""
    path = tmp_path / "two.yaml"
    script = [tool_reply(call("greet", {"name": "Alice"})), text_reply("Hello!")]
    with ScriptedModelServer(script) as server:
        with use_cassette(path, "once"):
            ask(server.base_url, "one")
            ask(server.base_url, "two")
        return path, server.base_url


# -- readable and stable -----------------------------------------------------------------------


def test_bodies_are_stored_as_json_not_as_encoded_strings(cassette: tuple[Path, str]) -> None:
    path, _ = cassette
    text = path.read_text()
    first = json.loads(text)["interactions"][0]
    assert first["request"]["body"]["json"]["messages"] == [{"content": "one", "role": "user"}]
    call_ = first["response"]["body"]["json"]["choices"][0]["message"]["tool_calls"][0]
    assert call_["function"]["name"] == "greet"
    assert "base64" not in text and "!!binary" not in text
    assert '\n        "method": "POST",\n' in text  # indented: one field per line


def test_the_file_is_valid_yaml_too(cassette: tuple[Path, str]) -> None:
    path, _ = cassette
    assert yaml.safe_load(path.read_text()) == json.loads(path.read_text())


def test_recording_the_same_run_again_writes_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "stable.yaml"
    texts = []
    with ScriptedModelServer() as server:
        for _ in range(2):
            server.reset([tool_reply(call("greet", {"name": "Alice"})), text_reply("Hi")])
            with use_cassette(path, "all"):
                ask(server.base_url, "one")
                ask(server.base_url, "two")
            texts.append(path.read_text())
    # No date header or request id left to differ (test_cassettes_volatile makes them differ).
    assert texts[0] == texts[1]


def test_a_gzipped_response_is_stored_decompressed(tmp_path: Path) -> None:
    import gzip

    import httpx2

    path = tmp_path / "gzip.yaml"
    payload = json.dumps({"greeting": "hello"}).encode()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            content=gzip.compress(payload),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )

    with (
        use_cassette(path, "once"),
        httpx2.Client(transport=httpx2.MockTransport(handler)) as client,
    ):
        assert client.get("https://api.example.test/hello").json() == {"greeting": "hello"}
    stored = json.loads(path.read_text())["interactions"][0]["response"]
    assert stored["body"] == {"json": {"greeting": "hello"}}
    assert "content-encoding" not in stored["headers"]
    with use_cassette(path), httpx2.Client(transport=httpx2.MockTransport(handler)) as client:
        assert client.get("https://api.example.test/hello").json() == {"greeting": "hello"}


def test_no_temporary_file_is_left_beside_the_cassette(cassette: tuple[Path, str]) -> None:
    path, _ = cassette
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_the_serializer_works_as_a_vcrpy_serializer(tmp_path: Path) -> None:
    my_vcr = vcr.VCR(record_mode="once", serializer="looplet")
    my_vcr.register_serializer("looplet", serializer)
    path = tmp_path / "vcrpy.yaml"
    with ScriptedModelServer([text_reply("via vcrpy")]) as server:
        url = server.base_url
        with my_vcr.use_cassette(str(path)):
            ask(url, "Q")
    assert json.loads(path.read_text())["format"] == serializer.FORMAT
    with my_vcr.use_cassette(str(path), record_mode="none"):
        assert ask(url, "Q") == "via vcrpy"


def test_an_error_response_body_replays_with_its_status(tmp_path: Path) -> None:
    path = tmp_path / "429.yaml"
    with ScriptedModelServer([error_reply(429, "Slow down.", type="rate_limit_error")]) as s:
        url = s.base_url
        with use_cassette(path, "once"), pytest.raises(openai.RateLimitError):
            ask(url, "Q")
    with use_cassette(path), pytest.raises(openai.RateLimitError, match="Slow down"):
        ask(url, "Q")


# -- broken files ------------------------------------------------------------------------------


def _assert_clean(error: CassetteCorruptError) -> None:
    """No parser traceback rides along: the message is the whole story."""
    assert error.__cause__ is None and error.__suppress_context__


def test_a_truncated_cassette_names_the_file_and_the_line(cassette: tuple[Path, str]) -> None:
    path, _ = cassette
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:39]) + lines[39][:12])  # cut in the middle of line 40
    with pytest.raises(CassetteCorruptError) as info, use_cassette(path):
        pass
    message = str(info.value)
    assert str(path) in message and "line 40" in message and "not valid JSON" in message
    assert "cut short" in message and "record_mode='all'" in message
    assert info.value.line == 40
    _assert_clean(info.value)


def test_a_corrupt_line_in_the_middle_is_named(cassette: tuple[Path, str]) -> None:
    path, _ = cassette
    lines = path.read_text().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if '"method"' in line)
    lines[number] = lines[number].replace(",", "")  # a missing comma
    path.write_text("".join(lines))
    with pytest.raises(CassetteCorruptError) as info, use_cassette(path):
        pass
    assert info.value.line == number + 2  # the parser notices on the next line
    assert f"line {number + 2}" in str(info.value)


def test_a_broken_vcrpy_yaml_cassette_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("interactions:\n- request:\n    method: POST\n   uri: [unclosed\n")
    with (
        pytest.raises(CassetteCorruptError, match="not valid YAML") as info,
        use_cassette(path, "once"),
    ):
        pass
    assert info.value.line is not None and str(path) in str(info.value)
    _assert_clean(info.value)


def test_a_cassette_of_the_wrong_shape_names_the_interaction(tmp_path: Path) -> None:
    path = tmp_path / "shape.yaml"
    document = {"format": serializer.FORMAT, "interactions": [{"request": {"method": "GET"}}]}
    path.write_text(json.dumps(document))
    with (
        pytest.raises(CassetteCorruptError, match="interaction 1 is malformed") as info,
        use_cassette(path, "new_episodes"),
    ):
        pass
    assert info.value.line is None
    _assert_clean(info.value)


def test_a_json_file_that_is_no_cassette_says_so(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text('{"steps": []}')
    with pytest.raises(CassetteCorruptError, match="no 'interactions' list"), use_cassette(path):
        pass


# -- the extra ---------------------------------------------------------------------------------


def test_without_vcrpy_use_cassette_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vcr", None)
    monkeypatch.setitem(sys.modules, "vcr.patch", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'looplet\[cassettes\]'"):
        use_cassette(tmp_path / "x.yaml")


def test_importing_looplet_cassettes_loads_no_third_party_package() -> None:
    code = (
        "import sys, looplet.cassettes; "
        "loaded = {'vcr', 'yaml', 'openai', 'anthropic', 'httpx2'} & set(sys.modules); "
        "print(sorted(loaded))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
