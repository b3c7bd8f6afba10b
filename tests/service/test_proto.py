"""The checked-in gRPC stubs are what grpcio-tools makes of embed.proto today."""

from __future__ import annotations

import re

import pytest

from sae.service import proto
from sae.service.proto import embed_pb2

protoc = pytest.importorskip("grpc_tools.protoc", reason="pip install -e '.[serve-test]' (grpcio-tools)")

STALE = "the gRPC stubs do not match sae/service/proto/embed.proto: run python -m sae.service.proto"


def without_versions(text: str) -> str:
    # The generator's version is written into the files; what it generates from the proto is what must match.
    text = re.sub(r"GRPC_GENERATED_VERSION = '[^']*'", "", text)
    text = re.sub(r"# Protobuf Python Version: .*", "", text)
    return re.sub(r"ValidateProtobufRuntimeVersion\([^)]*\)", "", text)


def test_stubs_match_the_proto(tmp_path):
    generated = proto.generate(tmp_path)
    for path in generated:
        checked_in = proto.PROTO.with_name(path.name)
        assert checked_in.exists(), f"{checked_in} is missing: run python -m sae.service.proto"
        assert without_versions(path.read_text()) == without_versions(checked_in.read_text()), STALE


def test_the_loaded_descriptor_is_the_protos(tmp_path):
    from google.protobuf import descriptor_pb2

    out = tmp_path / "embed.desc"
    root = proto.ROOT
    assert protoc.main(["protoc", f"-I{root}", f"--descriptor_set_out={out}",
                        str(proto.PROTO.relative_to(root).as_posix())]) == 0
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    for message in compiled.message_type:
        for field in message.field:
            field.ClearField("json_name")  # protoc fills it in descriptor sets only
    loaded = descriptor_pb2.FileDescriptorProto.FromString(embed_pb2.DESCRIPTOR.serialized_pb)
    assert compiled == loaded, STALE
    methods = {m.name: (m.client_streaming, m.server_streaming) for m in compiled.service[0].method}
    assert methods == {"Embed": (False, False), "EmbedStream": (True, True), "Info": (False, False)}
