"""Runnable examples: ``python -m looplet.examples.hello_world``."""
