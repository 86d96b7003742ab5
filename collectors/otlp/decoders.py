"""Where OTLP bodies are decoded: in worker processes, so decoding uses every core.

Decoding protobuf into rows is CPU work under the GIL; the server hands raw bodies to a
pool of processes and gets Arrow tables back, leaving its own threads free to receive
and write. With ``workers=0`` decoding happens in the calling thread.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from collectors.otlp.traces import DecodedSpans, decode_traces


class DecoderPool:
    """Decodes OTLP trace exports, in ``workers`` processes (0: inline)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 0:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)

    def warm_up(self) -> None:
        """Start every worker now rather than on the first request."""
        if self._pool:
            futures = [self._pool.submit(decode_traces, b"", False) for _ in range(self.workers)]
            for future in futures:
                future.result()

    def traces(self, body: bytes, json: bool) -> DecodedSpans:
        """Decode one trace export; raises ``BadRequest`` for a malformed body."""
        if self._pool is None:
            return decode_traces(body, json)
        return self._pool.submit(decode_traces, body, json).result()

    def shutdown(self) -> None:
        if self._pool:
            self._pool.shutdown(cancel_futures=True)
