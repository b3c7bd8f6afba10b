"""``python -m sae.service.proto``: regenerate the checked-in gRPC stubs from embed.proto."""

from sae.service.proto import ROOT, generate

for path in generate(ROOT):
    print(path)
