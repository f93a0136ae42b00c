"""What a message becomes on the wire (app.domain.outbound)."""

import pytest

from app.domain import wap_push
from app.domain.outbound import build_submission, plan_for, source_address_type


@pytest.mark.parametrize("sender,ton_npi", [("ACME", (5, 0)), ("99222", (3, 0)), ("447700900123", (1, 1))])
def test_source_address_types(sender, ton_npi):
    assert source_address_type(sender) == ton_npi


def submission(text, **options):
    defaults = dict(message_id="m", sender="99222", destination="447700900123", receipt=True, concat_ref=7)
    return build_submission(plan=plan_for(text, encoding=options.pop("encoding", None), flash=False),
                            **defaults | options)


def test_acknowledged_segments_are_skipped_and_the_rest_identical():
    every = submission("x" * 400)
    rest = submission("x" * 400, skip_seqs=frozenset({1, 3}))
    assert [s.seq for s in rest.segments] == [2]
    assert rest.segments[0] == every.segments[1]


def test_receipt_sets_registered_delivery():
    assert submission("hi").registered_delivery == 1
    assert submission("hi", receipt=False).registered_delivery == 0


def test_wap_push_goes_out_as_a_port_addressed_8bit_service_indication():
    result = submission("http://www.example.com/offer Today only", wap_push=True)
    [segment] = result.segments
    assert segment.data_coding == wap_push.DATA_CODING_8BIT and segment.esm_class & 0x40
    header_length = segment.short_message[0]
    header = segment.short_message[1:1 + header_length]
    assert header[:6] == bytes([0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0])  # ports 2948 <- 9200
    assert b"Today only" in segment.short_message
