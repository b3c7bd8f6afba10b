"""``--api-key-file`` and reloading the credentials (SIGHUP): keys rotate and a renewed
certificate is served without a restart or a dropped connection; a file that cannot serve
leaves the previous credentials serving."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
from service_helpers import running_server, tiny_service

from sae.service.auth import MAX_API_KEYS, bearer_matches, read_api_key_file
from sae.service.config import ServiceConfig
from sae.service.credentials import Credentials
from sae.service.proto import embed_pb2, embed_pb2_grpc

OLD, NEW = "sk-old-0123456789", "sk-new-9876543210"
REQUEST = embed_pb2.EmbedRequest(inputs=["a cat"], encoding=embed_pb2.BYTES)


def write(path: Path, text: str | bytes) -> None:
    """Replace ``path`` at once, as a deployment tool does (write aside, rename)."""
    aside = path.with_name(path.name + ".new")
    aside.write_bytes(text.encode() if isinstance(text, str) else text)
    os.replace(aside, path)


def test_a_key_file_holds_keys_one_a_line(tmp_path):
    keys = tmp_path / "keys"
    write(keys, f"# rotated 2026-12-03\n\n  {OLD}  \r\n{NEW}\n#{OLD}x\n")
    assert read_api_key_file(str(keys)) == ((None, OLD), (None, NEW))
    write(keys, f"alice {OLD}\n  team.b-2\t{NEW}  \n")  # a name first says whose the key is
    assert read_api_key_file(str(keys)) == (("alice", OLD), ("team.b-2", NEW))


@pytest.mark.parametrize(("content", "message"), [
    ("", "no key in it (one a line; lines starting with # are comments)"),
    ("# only a comment\n\n", "no key in it"),
    (f"{OLD}\nsk\x01two\n", "line 2: a key must be 1 to 4,096 visible ASCII characters, without spaces; the one "
     "given has a space"),
    (f"{OLD}\nclé-secrète\n", "line 2: a key must be"),
    ("x" * 4097, "line 1: a key must be 1 to 4,096 visible ASCII characters, without spaces; the one given has 4,097"),
    (b"\xff\xfe" + OLD.encode(), "not UTF-8 text (byte 0)"),
    ("".join(f"key{i}\n" for i in range(MAX_API_KEYS + 1)), f"257 keys, more than the limit of {MAX_API_KEYS}"),
    (f"{OLD}\nsk two words\n", "line 2: 3 words; a line is KEY or NAME KEY"),
    (f"al/ice {OLD}\n", "line 1: a key's name is 1 to 64 letters, digits"),
    (f"alice {OLD}\nalice {NEW}\n", "line 2: the name 'alice' is given to two keys"),
    (f"alice {OLD}\nbob {OLD}\n", "line 2: a key listed twice"),
    ("alice clé-secrète\n", "line 1: a key must be"),
])
def test_a_key_file_that_cannot_serve_is_one_line_without_its_keys(tmp_path, content, message):
    keys = tmp_path / "keys"
    write(keys, content)
    with pytest.raises(ValueError) as refused:
        read_api_key_file(str(keys))
    assert str(refused.value).startswith(f"--api-key-file {keys}") and message in str(refused.value)
    assert "\n" not in str(refused.value) and "sk two" not in str(refused.value) and "clé" not in str(refused.value)
    with pytest.raises(ValueError, match="No such file or directory"):
        read_api_key_file(str(tmp_path / "missing"))


def test_every_key_is_compared_and_only_a_listed_one_matches():
    keys = (OLD.encode(), NEW.encode())
    assert bearer_matches(f"Bearer {OLD}", keys) and bearer_matches(f"bearer {NEW}".encode(), keys)
    assert not bearer_matches(f"Bearer {OLD}{NEW}", keys) and not bearer_matches(f"Bearer {OLD[:-1]}", keys)
    assert not bearer_matches(None, keys) and not bearer_matches(f"Basic {OLD}", keys)
    assert not bearer_matches(f"Bearer {OLD}", ())


def test_a_key_and_a_key_file_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="api_key and api_key_file exclude each other"):
        ServiceConfig(api_key=OLD, api_key_file=str(tmp_path / "keys"))


def embed_over_http(http_url: str, key: str | None, **client) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(f"{http_url}/embed", json={"inputs": "a cat"}, headers=headers, timeout=30,
                      **client).status_code


def embed_over_grpc(channel: grpc.Channel, key: str | None) -> grpc.StatusCode:
    metadata = [("authorization", f"Bearer {key}")] if key is not None else []
    try:
        embed_pb2_grpc.EmbedderStub(channel).Embed(REQUEST, timeout=30, metadata=metadata)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_keys_rotate_on_a_reload_and_a_bad_file_keeps_the_previous_ones(tiny_dir, tmp_path):
    keys = tmp_path / "keys"
    write(keys, OLD)
    service = tiny_service(tiny_dir, workers=1, api_key_file=str(keys))
    with running_server(service) as addresses, grpc.insecure_channel(addresses.grpc_target) as channel:
        def accepted(key: str) -> tuple[bool, bool]:
            return embed_over_http(addresses.http_url, key) == 200, embed_over_grpc(channel, key) == grpc.StatusCode.OK

        assert accepted(OLD) == (True, True) and accepted(NEW) == (False, False)
        write(keys, f"{OLD}\n{NEW}\n")
        assert accepted(NEW) == (False, False)  # read on a reload only
        assert service.reload_credentials() == f"2 API keys from {keys}"
        assert accepted(OLD) == (True, True) and accepted(NEW) == (True, True)
        write(keys, f"# {OLD} retired\n{NEW}\n")
        assert service.reload_credentials() == f"1 API key from {keys}"
        assert accepted(OLD) == (False, False) and accepted(NEW) == (True, True)
        write(keys, "")  # a deployment that went wrong
        with pytest.raises(ValueError, match="no key in it"):
            service.reload_credentials()
        assert accepted(NEW) == (True, True) and accepted(OLD) == (False, False)
        metrics = httpx.get(f"{addresses.http_url}/metrics", timeout=30).text
    assert 'sae_credential_reloads_total{result="reloaded"} 2.0' in metrics
    assert 'sae_credential_reloads_total{result="refused"} 1.0' in metrics


@pytest.fixture
def trustme():
    """The TLS tests' certificates; only they skip without it (the key file's tests run)."""
    return pytest.importorskip("trustme", reason="the TLS tests make certificates with trustme: "
                               "pip install -e '.[serve-test]'")


def issue(ca, folder: Path) -> tuple[bytes, bytes]:
    issued = ca.issue_cert("127.0.0.1", "localhost")
    return b"".join(blob.bytes() for blob in issued.cert_chain_pems), issued.private_key_pem.bytes()


def trusting(ca) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_a_renewed_certificate_is_served_to_new_connections_and_open_ones_go_on(tiny_dir, tmp_path, trustme):
    """The renewal comes from another CA here, so that which certificate a handshake got
    shows in whom a client must trust."""
    first_ca, second_ca = trustme.CA(), trustme.CA()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    first_cert, first_key = issue(first_ca, tmp_path)
    write(cert, first_cert)
    write(key, first_key)
    service = tiny_service(tiny_dir, workers=1, ssl_certfile=str(cert), ssl_keyfile=str(key))

    def grpc_answers(ca) -> grpc.StatusCode:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
        with grpc.secure_channel(addresses.grpc_target, credentials) as channel:
            return embed_over_grpc(channel, None)

    with running_server(service) as addresses, httpx.Client(verify=trusting(first_ca), timeout=30) as kept:
        url = f"{addresses.http_url}/embed"
        assert kept.post(url, json={"inputs": "a cat"}).status_code == 200  # a connection that stays open
        assert grpc_answers(first_ca) == grpc.StatusCode.OK
        assert grpc_answers(second_ca) == grpc.StatusCode.UNAVAILABLE
        first_channel = grpc.secure_channel(addresses.grpc_target,
                                            grpc.ssl_channel_credentials(first_ca.cert_pem.bytes()))
        assert embed_over_grpc(first_channel, None) == grpc.StatusCode.OK

        second_cert, second_key = issue(second_ca, tmp_path)
        write(cert, second_cert)
        write(key, first_key)  # a renewal half written: the new certificate, the old key
        with pytest.raises(ValueError, match="not a PEM certificate and its private key"):
            service.reload_credentials()
        assert embed_over_http(addresses.http_url, None, verify=trusting(first_ca)) == 200

        write(key, second_key)
        assert re.fullmatch(rf"the certificate {re.escape(str(cert))} \(valid until \d\d\d\d-\d\d-\d\d \d\d:\d\d UTC\)",
                            service.reload_credentials())
        assert embed_over_http(addresses.http_url, None, verify=trusting(second_ca)) == 200
        with pytest.raises(httpx.ConnectError):
            embed_over_http(addresses.http_url, None, verify=trusting(first_ca))
        assert grpc_answers(second_ca) == grpc.StatusCode.OK
        assert grpc_answers(first_ca) == grpc.StatusCode.UNAVAILABLE
        # Connections made before the reload keep the certificate they shook hands with.
        assert kept.post(url, json={"inputs": "a cat"}).status_code == 200
        assert embed_over_grpc(first_channel, None) == grpc.StatusCode.OK
        first_channel.close()


def test_what_credentials_hold_and_whether_they_can_reload(tmp_path):
    keys = tmp_path / "keys"
    write(keys, OLD)
    credentials = Credentials(ServiceConfig(api_key_file=str(keys)))
    assert credentials.reloadable and credentials.requires_key and credentials.key_count == 1
    assert not Credentials(ServiceConfig(api_key=OLD)).reloadable
    assert Credentials(ServiceConfig()).key_matches(None)


def serve_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sae", "serve", "--backend", "cpu", "--port", "0", "--grpc-port",
                             "0", "--workers", "1", "--no-worker-processes", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def http_url_of(process: subprocess.Popen) -> str:
    line = process.stdout.readline()
    assert "listening on" in line, (line, process.stderr.read() if process.poll() is not None else "")
    return line.split("listening on ")[1].split(" ")[0]


def wait_until_accepted(http_url: str, key: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while embed_over_http(http_url, key) != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert embed_over_http(http_url, key) == 200


def terminated(process: subprocess.Popen) -> str:
    """SIGTERM, then the server's stderr once it has ended with exit code 0."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return stderr


def test_sighup_reloads_the_key_file_of_sae_serve(tiny_dir, tmp_path):
    keys = tmp_path / "keys"
    write(keys, OLD)
    process = serve_process("--algorithm", str(tiny_dir), "--api-key-file", str(keys))
    try:
        url = http_url_of(process)
        assert embed_over_http(url, OLD) == 200 and embed_over_http(url, NEW) == 401
        write(keys, NEW)
        process.send_signal(signal.SIGHUP)
        wait_until_accepted(url, NEW)
        assert embed_over_http(url, OLD) == 401
        write(keys, "\n")
        process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert embed_over_http(url, NEW) == 200
        stderr = terminated(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert f"SIGHUP reads {keys} again" in stderr
    assert f"SIGHUP: reloaded 1 API key from {keys}" in stderr
    assert (f"SIGHUP: reload refused, the previous credentials still serve: --api-key-file {keys}: no key in it"
            in stderr)
    assert OLD not in stderr and NEW not in stderr


def test_a_key_file_that_blocks_when_read_does_not_stop_the_server(tiny_dir, tmp_path):
    """The key file replaced by a FIFO nobody writes to: the reload waits in open() on its
    own thread while requests are answered (it waited on the event loop, and every request
    with it); a second SIGHUP makes a reload follow; a writer lets the first one finish;
    SIGTERM ends the server although the second still waits."""
    keys = tmp_path / "keys"
    write(keys, OLD)
    process = serve_process("--algorithm", str(tiny_dir), "--api-key-file", str(keys))
    try:
        url = http_url_of(process)
        os.remove(keys)
        os.mkfifo(keys)
        process.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        process.send_signal(signal.SIGHUP)
        assert httpx.post(f"{url}/embed", json={"inputs": "a cat"}, headers={"Authorization": f"Bearer {OLD}"},
                          timeout=5).status_code == 200
        with open(keys, "w") as fifo:  # meets the first reload's open()
            fifo.write(NEW + "\n")
        wait_until_accepted(url, NEW)
        assert embed_over_http(url, OLD) == 401
        stderr = terminated(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert "SIGHUP: a reload is still reading its files; another follows it" in stderr
    assert f"SIGHUP: reloaded 1 API key from {keys}" in stderr


def test_without_anything_to_reload_sighup_keeps_its_default(tiny_dir):
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:  # the server inherits it, and should
        pytest.skip("SIGHUP is ignored in this process (run under nohup?): so is it in the server")
    process = serve_process("--algorithm", str(tiny_dir))
    try:
        http_url_of(process)
        process.send_signal(signal.SIGHUP)
        assert process.wait(60) == -signal.SIGHUP
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_the_cli_refuses_a_key_file_that_cannot_serve_in_one_line(tiny_dir, tmp_path):
    keys = tmp_path / "keys"
    write(keys, "# nothing yet\n")
    base = [sys.executable, "-m", "sae", "serve", "--algorithm", str(tiny_dir), "--backend", "cpu"]
    environment = {k: v for k, v in os.environ.items() if k != "SAE_API_KEY"}
    for args, message in (
        (["--api-key-file", str(keys)], f"--api-key-file {keys}: no key in it"),
        (["--api-key-file", str(tmp_path / "missing")], "No such file or directory"),
        (["--api-key", OLD, "--api-key-file", str(keys)],
         "--api-key (or SAE_API_KEY) and --api-key-file exclude each other: give one"),
    ):
        result = subprocess.run(base + args, capture_output=True, text=True, timeout=120, env=environment)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sae serve: error: ") and message in lines[0], lines


def test_a_new_client_ca_is_checked_on_new_connections_after_a_reload(tiny_dir, tmp_path, trustme):
    server_ca, old_clients, new_clients = trustme.CA(), trustme.CA(), trustme.CA()
    cert, key, client_ca = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "clients.pem"
    server_cert, server_key = issue(server_ca, tmp_path)
    write(cert, server_cert)
    write(key, server_key)
    write(client_ca, old_clients.cert_pem.bytes())
    old_client, new_client = old_clients.issue_cert("a@sae.example"), new_clients.issue_cert("b@sae.example")
    service = tiny_service(tiny_dir, workers=1, ssl_certfile=str(cert), ssl_keyfile=str(key),
                           ssl_client_ca=str(client_ca))

    def answered(client) -> tuple[bool, bool]:
        context = trusting(server_ca)
        client.configure_cert(context)
        try:
            over_http = embed_over_http(addresses.http_url, None, verify=context) == 200
        except httpx.TransportError:
            over_http = False
        pair = grpc.ssl_channel_credentials(server_ca.cert_pem.bytes(), client.private_key_pem.bytes(),
                                            b"".join(blob.bytes() for blob in client.cert_chain_pems))
        with grpc.secure_channel(addresses.grpc_target, pair) as channel:
            return over_http, embed_over_grpc(channel, None) == grpc.StatusCode.OK

    with running_server(service) as addresses:
        assert answered(old_client) == (True, True) and answered(new_client) == (False, False)
        write(client_ca, new_clients.cert_pem.bytes())
        assert re.fullmatch(rf"the certificate {re.escape(str(cert))} \(valid until [^)]+\) and the client CA "
                            rf"{re.escape(str(client_ca))}", service.reload_credentials())
        assert answered(new_client) == (True, True) and answered(old_client) == (False, False)
        write(client_ca, b"")
        with pytest.raises(ValueError, match=f"--ssl-client-ca {client_ca}: no PEM certificate in it"):
            service.reload_credentials()
        assert answered(new_client) == (True, True)
