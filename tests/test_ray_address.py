"""A Ray address nothing answers on is one line, at once, not minutes of retries."""

from __future__ import annotations

import socket

import pytest

from sae.cli import main
from sae.errors import InputError
from sae.ray_address import check_ray_address


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_symbolic_addresses_are_left_to_ray():
    for address in (None, "", "auto", "local", "AUTO"):
        check_ray_address(address, "--ray")


def test_a_listening_address_passes_and_a_closed_one_is_refused():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        check_ray_address(f"127.0.0.1:{port}", "--ray")
        check_ray_address(f"ray://127.0.0.1:{port}", "--ray")
    port = closed_port()
    with pytest.raises(InputError, match=rf"--ray-address 127\.0\.0\.1:{port}: cannot reach a Ray cluster there"):
        check_ray_address(f"127.0.0.1:{port}", "--ray-address")


@pytest.mark.parametrize("address", ["nohostport", "host:", ":6379", "host:99999", "host:port"])
def test_a_malformed_address_is_named(address):
    with pytest.raises(InputError, match="expected HOST:PORT"):
        check_ray_address(address, "--ray")


def test_embed_with_an_unreachable_cluster_is_one_line_and_writes_nothing(tmp_path, tiny_dir, capsys):
    f = tmp_path / "in.txt"
    f.write_text("the cat\n")
    out = tmp_path / "out.parquet"
    code = main(["embed", str(f), "-o", str(out), "--algorithm", str(tiny_dir), f"--ray=127.0.0.1:{closed_port()}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot reach a Ray cluster there" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]
