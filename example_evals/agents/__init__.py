"""The example agents under test: each is a set of tools, hooks and a system prompt."""
