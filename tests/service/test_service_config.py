"""ServiceConfig: every limit has a range, checked before anything starts."""

from __future__ import annotations

import pytest

from sae.service.config import LIMITS, ServiceConfig


@pytest.mark.parametrize(("name", "value", "words"), [
    ("max_body_bytes", 2**31, "max_body_bytes must be in 1..1,073,741,824, got 2147483648"),  # gRPC: a C int
    ("max_queue", 2**32, "max_queue must be in 1..1,000,000"),  # gRPC Info: uint32
    ("max_texts", 2**32, "max_texts must be in 1..1,000,000"),
    ("max_batch_tokens", 2**32, "max_batch_tokens must be in 128..16,777,216"),
    ("max_batch_tokens", 127, "max_batch_tokens must be in 128..16,777,216, got 127"),
    ("max_wait_ms", 10**14, "max_wait_ms must be in 0..60,000"),  # a lone request waited forever
    ("max_wait_ms", -1, "max_wait_ms must be in 0..60,000, got -1"),
    ("max_queue", 0, "max_queue must be in 1..1,000,000, got 0"),
    ("drain_seconds", 1e300, "drain_seconds must be in 0..86,400"),
    ("drain_seconds", -1.0, "drain_seconds must be in 0..86,400, got -1.0"),
])
def test_limits_out_of_range_are_refused(name, value, words):
    with pytest.raises(ValueError, match=words.replace(".", r"\.")):
        ServiceConfig(**{name: value})


def test_the_largest_limits_fit_grpc():
    config = ServiceConfig(**{name: high for name, (_, high) in LIMITS.items()})
    assert config.max_body_bytes < 2**31  # grpc.max_receive_message_length is a C int
    assert all(high < 2**32 for _, high in LIMITS.values())  # InfoResponse fields are uint32
