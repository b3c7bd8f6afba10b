"""Ask a running `sae serve` for embeddings with the OpenAI client and over gRPC.

    pip install 'sae[serve]' openai && sae serve &       # then:
    python examples/serve_clients.py [HTTP_PORT GRPC_PORT]   # sae serve's defaults: 8080 50051

A server started with an API key (``SAE_API_KEY=... sae serve``) needs the same
``SAE_API_KEY`` here.
"""

import os
import sys

import grpc
import numpy as np
from openai import OpenAI

from sae.service.proto import embed_pb2, embed_pb2_grpc

http_port, grpc_port = sys.argv[1:3] if len(sys.argv) > 2 else ("8080", "50051")
texts = ["A man is playing a guitar.", "Someone is playing an instrument."]

key = os.environ.get("SAE_API_KEY")

# HTTP, OpenAI's shape: any OpenAI client works; the key is checked only if the server has one.
client = OpenAI(base_url=f"http://127.0.0.1:{http_port}/v1", api_key=key or "unused")
reply = client.embeddings.create(input=texts, model="default")
http_vectors = np.array([d.embedding for d in reply.data], dtype=np.float32)
print("HTTP:", http_vectors.shape, "cosine", float(http_vectors[0] @ http_vectors[1]))

# gRPC: BYTES asks for little-endian float32 bytes, the cheapest form to read.
metadata = [("authorization", f"Bearer {key}")] if key else None
with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
    stub = embed_pb2_grpc.EmbedderStub(channel)
    answer = stub.Embed(embed_pb2.EmbedRequest(inputs=texts, encoding=embed_pb2.BYTES), metadata=metadata)
    grpc_vectors = np.stack([np.frombuffer(e.data, dtype="<f4") for e in answer.embeddings])
    info = stub.Info(embed_pb2.InfoRequest(), metadata=metadata)
print("gRPC:", grpc_vectors.shape, f"Algorithm {info.algorithm} ({info.content_hash[:12]}), backend {info.backend}")
print("the same bytes:", http_vectors.tobytes() == grpc_vectors.tobytes())
