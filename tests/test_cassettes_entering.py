"""Entering a cassette: what the plugin asks of one per eval without reading the file twice,
and vcrpy's patches for HTTP libraries that are not installed left out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import openai
import pytest
import vcr.patch

from looplet.cassettes import recorded_base_url, use_cassette
from looplet.cassettes.cassette import absent_patchers
from looplet.cassettes.loopback import without_loopback_port
from looplet.testing import ScriptedModelServer, text_reply


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, str]:
    """A one-exchange cassette, and the base URL of the (stopped) server it came from, as
    the file keeps it: a loopback server's port is not written."""
    path = tmp_path / "one.yaml"
    with ScriptedModelServer([text_reply("Hello!")]) as server:
        with (
            use_cassette(path, "once"),
            openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as client,
        ):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        return path, without_loopback_port(server.base_url)


def test_the_base_url_comes_from_the_exchanges_already_loaded(recorded: tuple[Path, str]) -> None:
    path, base_url = recorded
    with use_cassette(path, "none") as cassette:
        path.unlink()  # read once, on entering: the URL needs no second read
        assert cassette.recorded_base_url() == base_url
        assert cassette.recorded_base_url("anthropic") is None
        with openai.OpenAI(base_url=base_url, api_key="looplet-replay") as client:
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert reply.choices[0].message.content == "Hello!"


def test_outside_the_block_the_base_url_is_read_from_the_file(recorded: tuple[Path, str]) -> None:
    path, base_url = recorded
    cassette = use_cassette(path, "none")
    assert cassette.recorded_base_url() == recorded_base_url(path) == base_url
    path.unlink()
    assert cassette.recorded_base_url() is None


def test_only_patchers_of_packages_that_are_not_installed_are_skipped() -> None:
    skipped = absent_patchers()
    assert set(skipped) <= set(vcr.patch.PATCHER_NAMES)
    assert "httpx2" not in skipped and "httplib" not in skipped  # the SDKs' and the stdlib's
    packages = {"boto3": "botocore"}
    for name in skipped:
        assert importlib.util.find_spec(packages.get(name, name)) is None, name
