"""examples/serve_clients.py against a running ``sae serve`` (the OpenAI client and gRPC)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_serve_cli import start

from sae import Engine

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "serve_clients.py"


@pytest.mark.parametrize("key", [None, "sk-example"])
def test_serve_clients_gets_the_same_bytes_over_http_and_grpc(key):
    pytest.importorskip("openai", reason="the example uses the OpenAI client: pip install -e '.[serve-test]'")
    keyed = ["--api-key", key] if key else []
    process, http_port, grpc_port = start(["--workers", "1", "--no-worker-processes", *keyed])  # the bundled default
    env = {name: value for name, value in os.environ.items() if name != "SAE_API_KEY"}
    try:
        result = subprocess.run([sys.executable, str(EXAMPLE), str(http_port), str(grpc_port)],
                                capture_output=True, text=True, timeout=120, env={**env, "SAE_API_KEY": key} if key else env)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    vectors = Engine(backend="cpu").embed(["A man is playing a guitar.", "Someone is playing an instrument."])
    cosine = re.search(r"^HTTP: \(2, (\d+)\) cosine (\S+)$", result.stdout, re.M)
    assert cosine and int(cosine.group(1)) == vectors.shape[1], result.stdout
    assert float(cosine.group(2)) == float(vectors[0] @ vectors[1])
    assert re.search(r"^gRPC: \(2, \d+\) Algorithm \S+ \([0-9a-f]{12}\), backend cpu$", result.stdout, re.M)
    assert result.stdout.rstrip().endswith("the same bytes: True")
