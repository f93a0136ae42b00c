"""The verification snippet the README gives clients verifies what smsagg signs."""

from __future__ import annotations

import re
import time
from pathlib import Path

from app.domain.callbacks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    encode_fields,
    signed_headers,
)

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_verify():
    section = README.read_text().split("## Callbacks (DR and MO)", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  (our own README)
    return namespace["verify"]


def test_the_readme_snippet_verifies_a_signed_callback_and_rejects_forgeries():
    verify = readme_verify()
    body = encode_fields([["type", "MO"], ["message_id", "mo-1"], ["message", "Grüße"]])
    headers = signed_headers("account-secret", time.time(), body)
    assert verify("account-secret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify("other-secret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify("account-secret", headers[TIMESTAMP_HEADER], body + b"&x=1", headers[SIGNATURE_HEADER])
    old = signed_headers("account-secret", time.time() - 3600, body)
    assert not verify("account-secret", old[TIMESTAMP_HEADER], body, old[SIGNATURE_HEADER])
