"""``--ssl-certfile`` / ``--ssl-keyfile``: HTTPS and gRPC over TLS with one certificate;
files that cannot serve are refused in one line before anything loads."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from service_helpers import running_server, serve_once, tiny_service

from sae import Engine
from sae.service.proto import embed_pb2, embed_pb2_grpc
from sae.service.tls import load_tls_files, validity

trustme = pytest.importorskip("trustme", reason="the TLS tests make certificates with trustme: "
                              "pip install -e '.[serve-test]'")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[object, Path, Path]:
    """A test CA, and a certificate it issued for 127.0.0.1 with its key, as PEM files."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return ca, cert, key


def test_https_and_grpc_over_tls_answer_the_engines_bytes(tiny_dir, certificate):
    ca, cert, key = certificate
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    expected = Engine(tiny_dir, backend="cpu").embed(["a cat"])
    service = tiny_service(tiny_dir, workers=1, ssl_certfile=str(cert), ssl_keyfile=str(key))
    with running_server(service) as addresses:
        assert addresses.http_url.startswith("https://")
        r = httpx.post(f"{addresses.http_url}/embed", json={"inputs": "a cat"}, verify=trusting, timeout=30)
        assert r.status_code == 200
        assert np.array(r.json(), dtype=np.float32).tobytes() == expected.tobytes()
        with pytest.raises(httpx.TransportError):  # plain HTTP to the TLS port
            httpx.post(f"http://127.0.0.1:{addresses.http_port}/embed", json={"inputs": "a cat"}, timeout=10)
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.post(f"{addresses.http_url}/embed", json={"inputs": "a cat"}, timeout=10)
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
        request = embed_pb2.EmbedRequest(inputs=["a cat"], encoding=embed_pb2.BYTES)
        with grpc.secure_channel(addresses.grpc_target, credentials) as channel:
            answer = embed_pb2_grpc.EmbedderStub(channel).Embed(request, timeout=30)
        assert answer.embeddings[0].data == expected[0].astype("<f4").tobytes()
        with grpc.insecure_channel(addresses.grpc_target) as channel, pytest.raises(grpc.RpcError) as refused:
            embed_pb2_grpc.EmbedderStub(channel).Embed(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def serve(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sae", "serve", "--backend", "cpu", "--port", "0",
                           "--grpc-port", "0", *args], capture_output=True, text=True, timeout=timeout)


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sae serve: error: "), result.stderr
    return lines[0]


def test_bad_tls_files_are_one_line_before_anything_loads(tiny_dir, certificate, tmp_path):
    _, cert, key = certificate
    alg = ["--algorithm", str(tiny_dir)]
    assert one_line(serve(*alg, "--ssl-certfile", str(cert))).endswith(
        "--ssl-certfile and --ssl-keyfile go together: give both or neither")
    missing = tmp_path / "missing.pem"
    assert one_line(serve(*alg, "--ssl-certfile", str(missing), "--ssl-keyfile", str(key))).endswith(
        f"--ssl-certfile {missing}: No such file or directory")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    line = one_line(serve(*alg, "--ssl-certfile", str(junk), "--ssl-keyfile", str(key)))
    assert f"--ssl-certfile {junk} and --ssl-keyfile {key}: not a PEM certificate and its private key" in line
    line = one_line(serve(*alg, "--ssl-certfile", str(cert), "--ssl-keyfile", str(cert)))  # the key file mixed up
    assert "not a PEM certificate and its private key" in line


def test_an_encrypted_key_is_refused_instead_of_asking_for_its_password(certificate, tmp_path):
    from cryptography.hazmat.primitives import serialization

    _, cert, key = certificate
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(ValueError, match=f"--ssl-keyfile {locked}: the private key is encrypted"):
        load_tls_files(str(cert), str(locked))


def test_sae_serve_over_tls_says_https_and_exits_0_on_sigterm(tiny_dir, certificate):
    _, cert, key = certificate
    process = subprocess.Popen([sys.executable, "-m", "sae", "serve", "--algorithm", str(tiny_dir), "--backend", "cpu",
                                "--port", "0", "--grpc-port", "0", "--ssl-certfile", str(cert), "--ssl-keyfile",
                                str(key)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert re.match(r"sae serve: listening on https://127\.0\.0\.1:\d+ \(HTTP\) and 127\.0\.0\.1:\d+ \(gRPC\)",
                        line), (line, process.stderr.read() if process.poll() is not None else "")
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_a_service_with_bad_tls_files_is_refused_before_anything_starts(tiny_dir, tmp_path):
    """A Python caller (no CLI check first) gets the one-line ValueError when it makes the
    service, before serve() starts the gRPC front end's thread and binds the HTTP socket
    (a refusal from within serve() left them behind once)."""
    import threading

    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")

    def grpc_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "sae-grpc"}

    before = grpc_threads()
    with pytest.raises(ValueError, match="not a PEM certificate and its private key"):
        tiny_service(tiny_dir, workers=1, ssl_certfile=str(junk), ssl_keyfile=str(junk))
    assert grpc_threads() <= before


def client_context(server_ca, client=None) -> ssl.SSLContext:
    """A client that trusts ``server_ca`` and presents ``client`` (a trustme certificate)."""
    context = ssl.create_default_context()
    server_ca.configure_trust(context)
    if client is not None:
        client.configure_cert(context)
    return context


def grpc_code(target: str, server_ca, client=None) -> grpc.StatusCode:
    pair = {}
    if client is not None:
        pair = {"private_key": client.private_key_pem.bytes(),
                "certificate_chain": b"".join(blob.bytes() for blob in client.cert_chain_pems)}
    credentials = grpc.ssl_channel_credentials(root_certificates=server_ca.cert_pem.bytes(), **pair)
    with grpc.secure_channel(target, credentials) as channel:
        try:
            embed_pb2_grpc.EmbedderStub(channel).Embed(embed_pb2.EmbedRequest(inputs=["a cat"]), timeout=30)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def test_mutual_tls_answers_only_clients_with_a_certificate_from_the_client_ca(tiny_dir, certificate, tmp_path):
    server_ca, cert, key = certificate
    client_ca, stranger_ca = trustme.CA(), trustme.CA()
    client_ca_file = tmp_path / "clients.pem"
    client_ca.cert_pem.write_to_path(str(client_ca_file))
    member, stranger = client_ca.issue_cert("worker@sae.example"), stranger_ca.issue_cert("worker@sae.example")
    service = tiny_service(tiny_dir, workers=1, ssl_certfile=str(cert), ssl_keyfile=str(key),
                           ssl_client_ca=str(client_ca_file))
    with running_server(service) as addresses:
        def http_status(client) -> int | str:
            try:
                return httpx.get(f"{addresses.http_url}/health", verify=client_context(server_ca, client),
                                 timeout=30).status_code
            except httpx.TransportError:
                return "refused"

        assert http_status(member) == 200
        assert http_status(None) == "refused" and http_status(stranger) == "refused"
        assert grpc_code(addresses.grpc_target, server_ca, member) == grpc.StatusCode.OK
        assert grpc_code(addresses.grpc_target, server_ca) == grpc.StatusCode.UNAVAILABLE
        assert grpc_code(addresses.grpc_target, server_ca, stranger) == grpc.StatusCode.UNAVAILABLE


def test_the_health_port_answers_probes_without_a_certificate_and_nothing_else(tiny_dir, certificate, tmp_path):
    """With mutual TLS an orchestrator's plain probe could not pass: --health-port serves
    /health and /metrics over plain HTTP, and no embedding."""
    _, cert, key = certificate
    client_ca_file = tmp_path / "clients.pem"
    trustme.CA().cert_pem.write_to_path(str(client_ca_file))
    service = tiny_service(tiny_dir, workers=1, ssl_certfile=str(cert), ssl_keyfile=str(key),
                           ssl_client_ca=str(client_ca_file), api_key="sk-health-port-test", health_port=0)
    with running_server(service) as addresses:
        assert addresses.health_url is not None and addresses.health_url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{addresses.health_url}/health", timeout=30).json() == {"status": "ok"}
        assert "sae_request_errors_total" in httpx.get(f"{addresses.health_url}/metrics", timeout=30).text
        refused = httpx.post(f"{addresses.health_url}/v1/embeddings", json={"input": "a cat"}, timeout=30)
        assert refused.status_code == 404 and "this port serves GET /health and /metrics" in refused.json()["error"]
        with pytest.raises(httpx.TransportError):  # the API port still asks for a certificate
            httpx.get(f"{addresses.http_url}/health", verify=False, timeout=30)
        service.begin_shutdown()  # a drain: the probe says so while the API finishes its requests
        assert httpx.get(f"{addresses.health_url}/health", timeout=30).status_code == 503


def test_a_client_ca_without_tls_or_without_a_certificate_is_one_line(tiny_dir, certificate, tmp_path):
    _, cert, key = certificate
    alg = ["--algorithm", str(tiny_dir)]
    assert one_line(serve(*alg, "--ssl-client-ca", str(cert))).endswith(
        "--ssl-client-ca needs --ssl-certfile and --ssl-keyfile: clients are checked over TLS")
    tls = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    for content in ("", "not a certificate\n", key.read_text()):
        junk = tmp_path / "ca.pem"
        junk.write_text(content)
        assert one_line(serve(*alg, *tls, "--ssl-client-ca", str(junk))).endswith(
            f"--ssl-client-ca {junk}: no PEM certificate in it")
    assert one_line(serve(*alg, *tls, "--ssl-client-ca", str(tmp_path / "missing.pem"))).endswith(
        "No such file or directory")


def _issue(ca, folder: Path, ends: datetime) -> tuple[Path, Path]:
    issued = ca.issue_cert("127.0.0.1", "localhost", not_after=ends)
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


def _expiry_metric(url: str, verify: ssl.SSLContext) -> float:
    text = httpx.get(f"{url}/metrics", verify=verify, timeout=30).text
    (value,) = re.findall(r"^sae_tls_certificate_expiry_timestamp_seconds (\S+)$", text, re.MULTILINE)
    return float(value)


def test_the_served_certificates_end_of_validity_is_a_metric_that_follows_a_reload(tiny_dir, tmp_path):
    ca = trustme.CA()
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    first, renewed = datetime(2031, 5, 6, 7, 8, tzinfo=timezone.utc), datetime(2032, 1, 2, 3, 4, tzinfo=timezone.utc)
    cert, key = _issue(ca, tmp_path, first)
    service = tiny_service(tiny_dir, workers=1, ssl_certfile=str(cert), ssl_keyfile=str(key))
    assert validity(service.credentials.tls) == "valid until 2031-05-06 07:08 UTC"
    with running_server(service) as addresses:
        assert _expiry_metric(addresses.http_url, trusting) == first.timestamp()
        _issue(ca, tmp_path, renewed)
        assert service.reload_credentials() == f"the certificate {cert} (valid until 2032-01-02 03:04 UTC)"
        assert _expiry_metric(addresses.http_url, trusting) == renewed.timestamp()
    plain = tiny_service(tiny_dir, workers=1)  # without TLS there is no certificate to report
    assert "sae_tls_certificate_expiry" not in plain.metrics.exposition().decode()


def test_an_expired_certificate_is_served_with_a_warning(tiny_dir, tmp_path):
    cert, key = _issue(trustme.CA(), tmp_path, datetime(2020, 2, 3, 4, 5, tzinfo=timezone.utc))
    tls = load_tls_files(str(cert), str(key))
    assert validity(tls) == "EXPIRED on 2020-02-03 04:05 UTC"
    assert validity(tls, now=datetime(2019, 1, 1, tzinfo=timezone.utc).timestamp()).startswith("valid until")
    code, ready, stderr = serve_once(tiny_dir, "--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    assert code == 0 and "listening on https://" in ready, stderr
    assert (f"the certificate {cert} EXPIRED on 2020-02-03 04:05 UTC: clients that check it refuse to connect"
            in stderr)
