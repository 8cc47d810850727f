"""Test helpers: scripted backends and a loopback OpenAI-compatible server."""
