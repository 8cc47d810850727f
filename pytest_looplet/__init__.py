"""pytest plugin for looplet (registered through the ``pytest11`` entry point)."""
