"""The Genesys MT acceptance codes (seed 000, "HTTP API Response" table).

The reply to ``/httpapi/receiver`` is always HTTP 200 with a ``text/plain`` body
``result_code=N``. How each case maps to a code is decided here, once:

=====  ==========================  =================================================
code   name                        smsagg returns it when
=====  ==========================  =================================================
0      Queued                      the message is durably queued
1      Request Invalid             a mandatory parameter is missing or malformed:
                                   phone_number not numeric/international,
                                   priority or receipt not a valid value, MMS
                                   attachments not numbered 0..n-1, bad base64,
                                   a content without its content type, a message_id
                                   missing on an account that requires it,
                                   undecodable UTF-8
2      Authentication Failed       unknown login, wrong password, disabled account,
                                   or a client IP outside the account's allowlist
                                   (one answer for all, so logins cannot be probed)
3      Carrier ID Invalid          ``carrier`` is given but is not an integer, or
                                   no carrier has that ID
4      Source address not allowed  the sender is not provisioned on this gateway at
                                   all (unknown address, or not a valid
                                   shortcode/long number/alphanumeric id)
5      Source address denied       the sender exists on this gateway but is not
                                   registered to this client (owned by another
                                   account, or disabled)
6      Throttled                   the account has no submission token left
7      Duplicate Message           this account already had a request with this
                                   message_id accepted
8      Message body too long       the text is longer than the account's maximum
                                   length, or the request body exceeds the
                                   gateway's size limit
98     Internal server error       smsagg could not complete the request (Redis or
                                   the database unreachable); nothing was queued
99     Any other error             anything not covered above
=====  ==========================  =================================================
"""

from __future__ import annotations

import enum


class ResultCode(enum.IntEnum):
    QUEUED = 0
    REQUEST_INVALID = 1
    AUTHENTICATION_FAILED = 2
    CARRIER_INVALID = 3
    SOURCE_NOT_ALLOWED = 4
    SOURCE_DENIED = 5
    THROTTLED = 6
    DUPLICATE = 7
    BODY_TOO_LONG = 8
    INTERNAL_ERROR = 98
    OTHER_ERROR = 99

    def reply_body(self) -> str:
        return f"result_code={int(self)}"


class Rejected(Exception):
    """A request refused with a result code; ``reason`` is for logs and docs only."""

    def __init__(self, code: ResultCode, reason: str):
        super().__init__(f"{int(code)}: {reason}")
        self.code = code
        self.reason = reason
