"""Observer hooks: watch a run as it happens without changing it.

:class:`StreamingHook` forwards the chunks of streamed model replies (text as it is
generated, tool-call arguments as they arrive) to your callbacks. Hooks that decide or change
anything live with the features they serve (permissions, compaction...).
"""

from __future__ import annotations

from collections.abc import Callable

from looplet.backends.base import StreamChunk
from looplet.hooks import LoopEvent

__all__ = ["StreamingHook"]


class StreamingHook:
    """Receives each chunk of a streamed reply while the model is still answering.

    Use it with a backend created with ``stream=True``; a backend that does not stream sends
    no chunks, and the hook then sees only whole replies through the loop's steps.

    Example::

        hook = StreamingHook(on_text=lambda text: print(text, end="", flush=True))
        for step in composable_loop(llm=OpenAIBackend(client, model=m, stream=True),
                                    tools=tools, task=task, hooks=[hook]):
            ...

    Args:
        on_chunk: called with every :class:`~looplet.backends.base.StreamChunk`.
        on_text: called with the text of each chunk that carries text.
    """

    def __init__(
        self,
        on_chunk: Callable[[StreamChunk], None] | None = None,
        *,
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        self.on_chunk = on_chunk
        self.on_text = on_text

    def on_event(self, event: LoopEvent) -> None:
        """Forward ``llm_chunk`` events to the callbacks; ignore the rest."""
        if event.kind != "llm_chunk":
            return
        chunk: StreamChunk = event.data["chunk"]
        if self.on_chunk is not None:
            self.on_chunk(chunk)
        if self.on_text is not None and chunk.text:
            self.on_text(chunk.text)
