"""A full disk under a live `onepane serve`: exports are refused with 503 / UNAVAILABLE and
one clear log line, nothing unstored is acknowledged, ingest resumes once space is back,
and the store opens clean after a restart with every acknowledged span in it.

The store lives on a 24 MiB tmpfs mounted in a private mount namespace
(``unshare -rm``: no root needed where user namespaces are allowed, and nothing is left
mounted afterwards). The scenario runs in a child process inside that namespace (this
file, run as a script) and prints what it saw as JSON; the tests check it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

TMPFS_MIB = 16
BALLAST_MIB = 3  # two such files: one freed once the disk is full, one before the restart
SPANS_PER_EXPORT = 100
FULL_MESSAGE = "the disk holding the store is full"


def _export(key: int) -> bytes:
    """SPANS_PER_EXPORT spans whose trace ids start with ``key``; random attribute values
    so DuckDB cannot compress the disk full slowly."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="filler"))
    )
    spans = resource.scope_spans.add().spans
    now = time.time_ns()
    for i in range(SPANS_PER_EXPORT):
        span = spans.add(trace_id=key.to_bytes(8, "big") + i.to_bytes(8, "big"))
        span.span_id, span.name, span.kind = (i + 1).to_bytes(8, "big"), "fill", 2
        span.start_time_unix_nano, span.end_time_unix_nano = now, now + 1_000_000
        span.attributes.append(
            KeyValue(key="app.blob", value=AnyValue(string_value=os.urandom(1500).hex()))
        )
    return request.SerializeToString()


def _fill(send: Any, first_key: int, limit: int = 400) -> tuple[list[int], list[str]]:
    """Export until three in a row are refused; (acknowledged keys, every answer code)."""
    acked, codes, refused = [], [], 0
    for key in range(first_key, first_key + limit):
        answer = send(_export(key))
        codes.append(answer.code)
        if answer.ok:
            acked.append(key)
            refused = 0
        else:
            refused += 1
            if refused == 3:
                break
    return acked, codes


def scenario(folder: Path) -> dict[str, Any]:
    """Fill the disk under a live server, free some space, export again, restart."""
    from onepane.testing import LiveServer, otlp_sender

    db = folder / "onepane.duckdb"
    ballast = [folder / "ballast-1", folder / "ballast-2"]
    for file in ballast:
        file.write_bytes(b"\0" * (BALLAST_MIB << 20))
    args = ("--decoders", "0", "--checkpoint-wal-mb", "2")
    server = LiveServer(db, *args)
    try:
        send = otlp_sender("http", server.otlp_url, server.grpc_address)
        acked, codes = _fill(send, 1)
        grpc = otlp_sender("grpc", server.otlp_url, server.grpc_address)(_export(9_999))
        status, health = server.get_json("/healthz")
        ballast[0].unlink()
        resumed = send(_export(10_000))
        if resumed.ok:
            acked.append(10_000)
    finally:
        code = server.stop()
    first_output = "".join(server.output)
    ballast[1].unlink()
    server = LiveServer(db, *args)
    try:
        after_restart = otlp_sender("http", server.otlp_url, server.grpc_address)(_export(20_000))
        if after_restart.ok:
            acked.append(20_000)
    finally:
        server.stop()
    conn = duckdb.connect(str(db), read_only=True)
    stored = dict(
        conn.execute(
            "SELECT ('0x' || trace_id[1:16])::BIGINT AS key, count(*) FROM spans GROUP BY key"
        ).fetchall()
    )
    conn.close()
    return {
        "acked": acked,
        "codes": codes,
        "grpc": grpc.code,
        "healthz": [status, health.get("store_bytes")],
        "resumed": resumed.code,
        "after_restart": after_restart.code,
        "exit_code": code,
        "output": first_output,
        "restart_output": "".join(server.output),
        "stored": {str(key): count for key, count in stored.items()},
    }


@pytest.fixture(scope="module")
def full_disk() -> dict[str, Any]:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a small tmpfs in a private mount namespace")
    folder = Path(tempfile.mkdtemp(prefix="onepane-full-disk-"))
    script = (
        f"mount -t tmpfs -o size={TMPFS_MIB}m tmpfs {folder} || exit 77; "
        f"exec {sys.executable} {Path(__file__).resolve()} {folder}"
    )
    child = subprocess.Popen(
        ["unshare", "-rm", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,  # its servers too, so a timeout stops them all
    )
    try:
        stdout, stderr = child.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        stdout, stderr = child.communicate()
        pytest.fail(f"the full-disk scenario did not finish in 240 s: {stderr}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if child.returncode == 77 or "unshare failed" in stderr:
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {stderr.strip()}")
    assert child.returncode == 0, stderr
    return json.loads(stdout.splitlines()[-1])


def test_a_full_disk_is_answered_503_and_logged_once(full_disk: dict[str, Any]) -> None:
    codes = full_disk["codes"]
    assert codes[-3:] == ["503"] * 3, codes
    assert set(codes) <= {"200", "503"}, codes
    assert len(full_disk["acked"]) >= 10  # the disk took a while to fill
    assert full_disk["grpc"] == "UNAVAILABLE"
    assert full_disk["healthz"][0] == 200
    output = full_disk["output"]
    assert output.count(FULL_MESSAGE) == 1, output
    assert "Traceback" not in output, output


def test_ingest_resumes_once_space_is_back(full_disk: dict[str, Any]) -> None:
    assert full_disk["resumed"] == "200", full_disk["output"]
    assert "the store takes writes again" in full_disk["output"]


def test_the_store_opens_clean_with_every_acknowledged_span(full_disk: dict[str, Any]) -> None:
    assert full_disk["exit_code"] == 0, full_disk["output"]
    assert full_disk["after_restart"] == "200", full_disk["restart_output"]
    stored = full_disk["stored"]
    missing = [key for key in full_disk["acked"] if stored.get(str(key)) != SPANS_PER_EXPORT]
    assert missing == []


if __name__ == "__main__":
    print(json.dumps(scenario(Path(sys.argv[1]))))
