"""The gRPC interface: ``embed.proto`` and the stubs generated from it (checked in).

Regenerate the stubs after editing the proto with ``python -m sae.service.proto``
(needs ``grpcio-tools``); ``tests/service/test_proto.py`` fails while they differ.
"""

from __future__ import annotations

from pathlib import Path

#: The proto, and the root its import path (``sae/service/proto/embed.proto``) is relative to:
#: compiling from there makes the stubs import each other as ``sae.service.proto.*``.
PROTO = Path(__file__).with_name("embed.proto")
ROOT = PROTO.parents[3]
GENERATED = ("embed_pb2.py", "embed_pb2.pyi", "embed_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Compile the proto with grpcio-tools into ``out_root/sae/service/proto/``; the files written."""
    try:
        from importlib.resources import files

        from grpc_tools import protoc
    except ImportError:
        raise ImportError("generating the gRPC stubs needs grpcio-tools: pip install grpcio-tools") from None
    out_root = Path(out_root)
    relative = PROTO.relative_to(ROOT)
    (out_root / relative.parent).mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{files('grpc_tools') / '_proto'}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        str(relative.as_posix()),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    return [out_root / relative.parent / name for name in GENERATED]
