"""Where OTLP bodies are decoded: in worker processes, so decoding uses every core.

Decoding protobuf into rows is CPU work under the GIL; the server hands raw bodies to a
pool of processes and gets Arrow tables back, leaving its own threads free to receive
and write. With ``workers=0`` decoding happens in the calling thread.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from collectors.otlp.decoded import Decoded
from collectors.otlp.logs import decode_logs
from collectors.otlp.metrics import decode_metrics
from collectors.otlp.traces import decode_traces
from onepane.errors import Unavailable

_DECODE = {"traces": decode_traces, "metrics": decode_metrics, "logs": decode_logs}
SIGNALS = tuple(_DECODE)


def decode(signal: str, body: bytes, json: bool) -> Decoded:
    """Decode one export of ``signal`` (traces, metrics or logs); 400 for a bad body."""
    return _DECODE[signal](body, json)


def init_worker() -> None:
    """Workers leave Ctrl-C and SIGTERM to the server, which drains and then stops them,
    and exit on their own if the server dies without stopping them (SIGKILL, OOM kill)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    while True:
        time.sleep(every_s)
        if os.getppid() != parent:
            os._exit(0)


class DecoderPool:
    """Decodes OTLP exports, in ``workers`` processes (0: inline)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self._lock = threading.Lock()
        self._closed = False
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor | None:
        if self.workers <= 0:
            return None
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=init_worker)

    def warm_up(self) -> None:
        """Start every worker now rather than on the first request."""
        if self._pool:
            futures = [
                self._pool.submit(decode, signal, b"", False)
                for _ in range(self.workers)
                for signal in SIGNALS
            ]
            for future in futures:
                future.result()

    def decode(self, signal: str, body: bytes, json: bool) -> Decoded:
        """Decode one export; raises ``BadRequest`` for a malformed body."""
        pool = self._pool
        if pool is None:
            return decode(signal, body, json)
        try:
            return pool.submit(decode, signal, body, json).result()
        except BrokenProcessPool:
            self._replace(pool)
            raise Unavailable("a decoder process died; retry the export") from None
        except RuntimeError:  # a keep-alive connection still sending while the server stops
            if not self._closed:
                raise
            raise Unavailable("the server is shutting down; retry the export") from None

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Start a fresh pool once for every request that found this one broken."""
        with self._lock:
            if self._pool is broken:
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()

    def shutdown(self) -> None:
        self._closed = True
        if self._pool:
            self._pool.shutdown(cancel_futures=True)
