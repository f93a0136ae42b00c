"""Where a message_id sits in the id filter."""

from __future__ import annotations

from app.domain.id_filter import HEADER_BITS, false_positive_rate, positions


def test_positions_are_stable_after_the_header_and_per_account():
    first = positions(1, "m-1", size=1 << 20, hashes=7)
    assert first == positions(1, "m-1", size=1 << 20, hashes=7) and len(first) == 7
    assert all(HEADER_BITS <= p < HEADER_BITS + (1 << 20) for p in first)
    assert first != positions(2, "m-1", size=1 << 20, hashes=7)
    assert len(set(first)) == 7


def test_the_filter_size_gives_about_one_percent_at_ten_bits_per_id():
    assert 0.005 < false_positive_rate(100_000, size=960_000, hashes=7) < 0.015
    assert false_positive_rate(0, size=1 << 26, hashes=7) == 0
