"""bench dr-leg on a small run: every receipt applied, every callback delivered to a real
receiver process, and the figures reported against their baselines."""

import pytest

from app.bench import dr_leg
from app.db import migrate

pytestmark = pytest.mark.timeout(60)


def test_a_small_run_reports_both_legs_and_their_baselines(sqlite_url, tmp_path):
    migrate.upgrade(sqlite_url)
    lines = []
    with dr_leg.callback_receiver(tmp_path) as url:
        figures = dr_leg.measure(sqlite_url, url, 30, batch=8, echo=lines.append)
    assert figures["receipts"]["items"] == 30 and figures["receipts"]["calls"] == 4
    assert figures["callbacks"]["items"] == 60
    assert figures["insert_baseline"]["items"] == 30 and figures["sender_baseline"]["items"] == 60
    assert figures["receipt_ratio"] > 0 and figures["callback_ratio"] > 0
    assert any(line.startswith("ratios") for line in lines)
    received = (tmp_path / "received.tsv").read_text().splitlines()
    assert len(received) == 60 + 60  # the callbacks, then the sender baseline's requests
