"""`onepane token create|list|revoke`, offline on the store file and through a running
server whose API serves HTTPS (``--tls-cert``/``--tls-key``), and the CLI's other commands
sending ``$ONEPANE_TOKEN``.

The module's store is bootstrapped as a user would: `onepane serve --host 0.0.0.0` refuses
to start without a token, so the first (admin) token is made offline on the store file.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from onepane.config import api_tls
from onepane.errors import ConfigError
from onepane.testing import LiveServer, run_onepane, serve_once
from store import db, tokens
from tests.deploy_hooks.test_admission import make_tls


@dataclass
class Served:
    server: LiveServer
    ca: Path
    admin: str
    bootstrap: dict[str, subprocess.CompletedProcess[str]]

    def env(self, token: str | None) -> dict[str, str]:
        """The environment of a CLI command: the CA it trusts, and ``token`` if given."""
        env = {k: v for k, v in os.environ.items() if k != "ONEPANE_TOKEN"}
        env["SSL_CERT_FILE"] = str(self.ca)
        return env | ({"ONEPANE_TOKEN": token} if token else {})

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_onepane(*args, "--server", self.server.api_url, env=self.env(token))

    def get(self, path: str, token: str) -> int:
        """The status of an HTTPS GET with ``token``, verifying the server's certificate."""
        request = urllib.request.Request(self.server.api_url + path)
        request.add_header("Authorization", f"Bearer {token}")
        context = ssl.create_default_context(cafile=self.ca)
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("tokens")
    ca, store = make_tls(tmp), tmp / "onepane.duckdb"
    steps = {
        "exposed": serve_once(store, "--host", "0.0.0.0"),
        "admin": run_onepane("token", "create", "--db", str(store), "--name", "admin",
                             "--scope", "admin"),
    }  # fmt: skip
    assert steps["admin"].returncode == 0, steps["admin"].stderr
    tls = ("--tls-cert", str(tmp / "server.crt"), "--tls-key", str(tmp / "server.key"))
    server = LiveServer(store, *tls, "--decoders", "0")
    try:
        yield Served(server, ca, steps["admin"].stdout.strip(), steps)
    finally:
        server.stop()


def test_the_first_token_is_made_offline_and_shown_once(served: Served) -> None:
    first = served.bootstrap["admin"]
    secret = first.stdout.strip()
    assert secret == served.admin and secret.startswith("onepane_") and len(secret) > 40
    assert secret not in first.stderr and "not shown again" in first.stderr
    assert "token 1 (admin: admin)" in first.stderr


def test_without_tokens_the_server_does_not_listen_beyond_loopback(served: Served) -> None:
    exposed = served.bootstrap["exposed"]
    assert exposed.returncode == 2
    assert "refusing to listen on 0.0.0.0 without auth" in exposed.stderr
    assert "onepane token create --db PATH" in exposed.stderr


def test_offline_commands_name_the_server_that_holds_the_store(served: Served) -> None:
    held = run_onepane("token", "list", "--db", str(served.server.db))
    assert held.returncode == 2
    assert "a running server holds it" in held.stderr and "--server URL" in held.stderr


def test_tokens_through_the_running_server(served: Served) -> None:
    made = served.cli(
        "token", "create", "--name", "ci", "--scope", "ingest", "--scope", "read",
        "--team", "payments", token=served.admin,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert served.get("/api/v1/pipelines/runs", secret) == 200
    listed = served.cli("token", "list", "--json", token=served.admin)
    found = {t["name"]: t for t in json.loads(listed.stdout)["tokens"]}
    assert found["ci"]["scopes"] == ["ingest", "read"] and found["ci"]["team"] == "payments"
    assert found["admin"]["revoked_unix_nano"] is None
    assert secret not in listed.stdout
    revoked = served.cli("token", "revoke", str(found["ci"]["id"]), token=served.admin)
    assert revoked.returncode == 0 and "revoked" in revoked.stderr
    assert served.get("/api/v1/pipelines/runs", secret) == 401


def test_cli_commands_send_onepane_token(served: Served) -> None:
    without = served.cli("traces")
    assert without.returncode == 2
    assert "set $ONEPANE_TOKEN" in without.stderr and "Authorization: Bearer" in without.stderr
    assert served.cli("traces", token=served.admin).returncode == 0


def test_the_api_serves_https_only(served: Served) -> None:
    assert served.server.api_url.startswith("https://127.0.0.1:")
    assert served.get("/healthz", served.admin) == 200
    host, port = served.server.api_url.removeprefix("https://").split(":")
    plain = http.client.HTTPConnection(host, int(port), timeout=10)
    with pytest.raises((http.client.HTTPException, OSError)):
        plain.request("GET", "/healthz")
        plain.getresponse().read()
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(served.server.api_url + "/healthz", timeout=10)


def test_the_api_tls_section_of_onepane_yaml(tmp_path: Path) -> None:
    (tmp_path / "api.crt").write_text("cert")
    (tmp_path / "api.key").write_text("key")
    file = {"api": {"tls": {"cert": "api.crt", "key": "api.key"}}}
    found = api_tls(file, tmp_path / "onepane.yaml", None, None)
    assert found is not None and (found.cert, found.key) == (
        tmp_path / "api.crt",
        tmp_path / "api.key",
    )
    assert api_tls({}, None, None, None) is None
    with pytest.raises(ConfigError, match="give both --tls-cert and --tls-key"):
        api_tls({}, None, tmp_path / "api.crt", None)
    with pytest.raises(ConfigError, match="exactly cert and key"):
        api_tls({"api": {"tls": {"cert": "api.crt"}}}, None, None, None)


def test_the_store_keeps_only_the_hash() -> None:
    conn = duckdb.connect(":memory:")
    [sql] = [sql for _, name, sql in db.migrations() if name == "007_tokens.sql"]
    conn.execute(sql)
    try:
        token, secret = tokens.create(conn, "ci", ["read", "ingest"], "payments", 1)
        assert token.scopes == ("ingest", "read")
        [row] = conn.execute("SELECT * FROM tokens").fetchall()
        assert secret not in repr(row)
        assert hashlib.sha256(secret.encode()).hexdigest() in row
        assert tokens.lookup(conn, tokens.hash_secret(secret)) == token
        tokens.revoke(conn, token.token_id, 2)
        assert tokens.lookup(conn, tokens.hash_secret(secret)) is None
        assert tokens.active(conn) == {}
    finally:
        conn.close()
