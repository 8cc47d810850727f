"""Shared settings of the example evals.

Each eval file defines the fixtures of its own agent (``looplet_tools``,
``looplet_permissions``, ``looplet_config``...); ``looplet_agent`` comes from the plugin and
replays each eval's cassette from ``cassettes/<file>/<eval>.yaml``.
"""
