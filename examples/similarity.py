"""Embed a few sentences with the bundled default and print their cosine similarities."""

from sae import Engine

sentences = [
    "A man is playing a guitar.",
    "Someone is playing an instrument.",
    "A woman is slicing an onion.",
    "The stock market fell sharply today.",
]

engine = Engine(backend="cpu")
vectors = engine.embed(sentences)  # (4, dim), L2-normalized: dot product = cosine
similarity = vectors @ vectors.T
for i, s in enumerate(sentences):
    best = max((j for j in range(len(sentences)) if j != i), key=lambda j: similarity[i, j])
    print(f"{s!r:42} closest: {sentences[best]!r} ({similarity[i, best]:.3f})")
