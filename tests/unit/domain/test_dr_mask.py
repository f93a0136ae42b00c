"""The DR mask: which states a client is called back for."""

from __future__ import annotations

import pytest

from app.domain.states import FINAL_STATES, DrMask, MessageState


@pytest.mark.parametrize("state", list(MessageState))
def test_all_passes_every_state_and_final_only_the_final_ones(state):
    assert DrMask.ALL.passes(state)
    assert DrMask.FINAL.passes(state) is (state in FINAL_STATES)


def test_final_drops_the_smsc_acceptance_and_en_route():
    assert not DrMask.FINAL.passes(MessageState.ACCEPTED) and not DrMask.FINAL.passes(MessageState.ENROUTE)
    assert DrMask.FINAL.passes(MessageState.DELIVERED) and DrMask.FINAL.passes(MessageState.REJECTED)


@pytest.mark.parametrize("text,mask", [("all", DrMask.ALL), ("FINAL", DrMask.FINAL), (" Final ", DrMask.FINAL)])
def test_parse_ignores_case_and_spaces(text, mask):
    assert DrMask.parse(text) is mask


@pytest.mark.parametrize("text", ["", "3", "finals", "none"])
def test_parse_refuses_anything_else_naming_the_choices(text):
    with pytest.raises(ValueError, match="DR mask must be one of all, final"):
        DrMask.parse(text)


@pytest.mark.parametrize("requested,account,effective", [
    (None, "final", DrMask.FINAL), ("all", "final", DrMask.ALL), ("final", "all", DrMask.FINAL),
    (None, "all", DrMask.ALL), (None, None, DrMask.ALL),
])
def test_the_requests_mask_wins_over_the_accounts(requested, account, effective):
    assert DrMask.effective(requested, account) is effective
