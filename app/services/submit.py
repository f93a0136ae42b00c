"""Accepting an MT from ``/httpapi/receiver``: the ingress hot path.

Work per request, and nothing else (DESIGN.md): parse and validate (pure), look up
the cached credential, authorize the sender, then one Redis round trip that claims
the idempotency key, takes an account token and queues the payload on its priority's
MT list (:mod:`app.adapters.stage_queue`). A request with a ``message_id`` is first
looked up in the message log (:mod:`app.services.message_log`, one indexed query), so
an id is refused with ``7`` for good, not only while its Redis claim lives; with the
database unreachable the claim alone decides, and the worker refuses a repeat it then
finds (a DR with result code 7). The reply is the
seed's ``result_code``; ``0`` means the message is durable in Redis and a worker
will record it and carry it to a final state.

The payload carries the whole accepted request (it exists nowhere else yet); from
the worker on, every stage passes only the message id.

The REST API (:mod:`app.api`) authenticates with API keys and then sends a
single-destination message through :meth:`SubmitService.admit`: the same account
rules and the same Redis step, answered with :class:`Admitted` or a :class:`Refused`
that keeps what the script said (the original id of a duplicate, the bucket's wait).

Credentials go through the process's guard (docs/security.md): a login or address
locked out after too many failures gets ``2`` without the KDF running, like a wrong
password; every password check slot busy gets ``6`` (Throttled: "lower the request
rate", which a client retries after a short wait), at once.

Controls shared with the bulk API (``docs/bulk.md``), answered with this API's codes:

* a client IP on the operator's denylist gets ``2``, like one outside the account's
  allowlist (one answer for every authentication refusal);
* a destination that opted out of the account (an MO ``STOP``) gets ``99`` (the seed
  has no opt-out code; 99 is its "any other error", and not retrying is right);
* a prepaid account whose balance does not cover the message gets ``99``; an accepted
  message of a prepaid account is debited (parts x per-segment price) in the same
  atomic Redis step, and ``price`` in the task payload says how much, so a refund is
  exact. The operator's DND registry does not apply here: it is for bulk campaigns.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy.exc import SQLAlchemyError

from app.adapters import metrics, stage_queue
from app.adapters.redis_scripts import Admission, RedisStore
from app.domain.accepted import AcceptedMessage
from app.domain.encoding import UnencodableText, plan_encoding
from app.domain.mt_request import MtRequest, check_length, check_mms_size, classify_sender, parse_mt_request
from app.domain.result_codes import Rejected, ResultCode
from app.services.auth_guard import KdfBusy
from app.services.directory import AccountView, Directory
from app.services.message_log import MessageLog

log = logging.getLogger(__name__)


def new_message_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Admitted:
    """An MT durably queued (``result_code=0``)."""

    message_id: str


class Refused(Rejected):
    """Refused by the admission script: ``outcome`` says why, with the id the duplicate
    ``message_id`` was first accepted under, or the seconds the bucket needs."""

    def __init__(self, code: ResultCode, reason: str, *, outcome: Admission,
                 existing_message_id: str | None = None, wait_seconds: float = 0.0):
        super().__init__(code, reason)
        self.outcome = outcome
        self.existing_message_id = existing_message_id
        self.wait_seconds = wait_seconds


class SubmitService:
    def __init__(
        self,
        directory: Directory,
        store: RedisStore,
        *,
        claim_ttl_seconds: int,
        max_mms_bytes: int,
        message_log: MessageLog | None = None,
        clock: Callable[[], float] = time.time,
        make_id: Callable[[], str] = new_message_id,
    ):
        self.directory = directory
        self.store = store
        self.claim_ttl_seconds = claim_ttl_seconds
        self.max_mms_bytes = max_mms_bytes
        self.message_log = message_log
        self.clock = clock
        self.make_id = make_id

    def submit(self, params: Mapping[str, str], client_ip: str | None) -> ResultCode:
        """Accept or refuse one MT; never raises."""
        try:
            request = parse_mt_request(params)
            account = self._authenticate(request, client_ip)
            self._enqueue(account, request)
            return ResultCode.QUEUED
        except Rejected as rejected:
            log.info("MT refused with %d: %s", rejected.code, rejected.reason)
            return rejected.code
        except (redis.RedisError, SQLAlchemyError, OSError):
            log.exception("MT not accepted: a backing service failed")
            return ResultCode.INTERNAL_ERROR
        except Exception:
            # Not a backing service being down (98, "try again"): seed 000's 99, "any
            # errors not specified by one of the other result codes". Nothing was queued.
            log.exception("MT not accepted: unexpected error")
            return ResultCode.OTHER_ERROR

    def admit(self, account: AccountView, request: MtRequest, client_ip: str | None) -> Admitted:
        """Accept one MT for an account another API has authenticated (the REST API's
        keys): the account's rules, then the one Redis step. Raises :class:`Rejected`
        (:class:`Refused` from the script); a backing service's error propagates."""
        self._authorize(account, request, client_ip)
        return self._enqueue(account, request)

    def _authenticate(self, request: MtRequest, client_ip: str | None) -> AccountView:
        try:
            account = self.directory.authenticate(request.login, request.password, client_ip)
        except KdfBusy:
            raise Rejected(ResultCode.THROTTLED, f"password check busy for {request.login!r}") from None
        if account is None:
            raise Rejected(ResultCode.AUTHENTICATION_FAILED, f"credentials refused for {request.login!r}")
        self._authorize(account, request, client_ip)
        return account

    def _authorize(self, account: AccountView, request: MtRequest, client_ip: str | None) -> None:
        if not account.allows_ip(client_ip) or self.directory.ip_denied(client_ip):
            raise Rejected(ResultCode.AUTHENTICATION_FAILED, f"client IP {client_ip} refused for {account.login!r}")
        if request.message_id is None and not account.message_id_optional:
            raise Rejected(ResultCode.REQUEST_INVALID, "message_id is missing")
        if request.carrier is not None and not self.directory.carrier_exists(request.carrier):
            raise Rejected(ResultCode.CARRIER_INVALID, f"no carrier {request.carrier}")
        self._authorize_sender(account, request.sender)
        check_length(request.message, account.max_message_length)
        check_mms_size(request.attachments, request.message, self.max_mms_bytes)

    def _authorize_sender(self, account: AccountView, sender: str) -> None:
        record = self.directory.sender(sender) if classify_sender(sender) else None
        if record is None:
            raise Rejected(ResultCode.SOURCE_NOT_ALLOWED, f"sender {sender!r} is not provisioned")
        if record.account_id != account.id or not record.enabled:
            raise Rejected(ResultCode.SOURCE_DENIED, f"sender {sender!r} is not registered to {account.login!r}")

    def _enqueue(self, account: AccountView, request: MtRequest) -> Admitted:
        if request.message_id is not None:
            self._refuse_logged_duplicate(account, request.message_id)
        message_id = self.make_id()
        priority = request.priority or account.default_priority
        prepaid = self.directory.policy(account.id).prepaid
        price = self._price(request) if prepaid else 0
        payload = accepted_payload(message_id, account, request, priority.value, self.clock())
        payload["price"] = price
        result = self.store.admit(
            account_id=account.id,
            client_message_id=request.message_id,
            message_id=message_id,
            claim_ttl_seconds=self.claim_ttl_seconds,
            rate=account.rate,
            burst=account.burst,
            queue=priority.queue,
            item=stage_queue.item(payload),
            drain=stage_queue.drain_message(priority.queue),
            phone_number=request.phone_number,
            price=price,
            prepaid=prepaid,
        )
        if result.outcome is Admission.OPTED_OUT:
            raise Refused(ResultCode.OTHER_ERROR, f"{request.phone_number} opted out of {account.login!r}",
                          outcome=result.outcome)
        if result.outcome is Admission.INSUFFICIENT_CREDIT:
            raise Refused(ResultCode.OTHER_ERROR, f"{account.login!r} has too little credit for {price} units",
                          outcome=result.outcome)
        if result.outcome is Admission.DUPLICATE:
            raise Refused(ResultCode.DUPLICATE, f"message_id {request.message_id!r} already accepted",
                          outcome=result.outcome, existing_message_id=result.existing_message_id)
        if result.outcome is Admission.THROTTLED:
            raise Refused(ResultCode.THROTTLED, f"{account.login!r} over its rate, wait {result.wait_seconds:.3f}s",
                          outcome=result.outcome, wait_seconds=result.wait_seconds)
        metrics.ACCEPTED.inc(priority.value)
        return Admitted(message_id)

    def _refuse_logged_duplicate(self, account: AccountView, client_message_id: str) -> None:
        """``7`` for an id the message log holds (its claim may have expired). The
        database being away does not stop the ingress: the claim still decides, and the
        worker refuses what the claim no longer covers."""
        if self.message_log is None:
            return
        try:
            existing = self.message_log.accepted_id(account.id, client_message_id)
        except SQLAlchemyError as exc:
            log.warning("message log unreachable, %r checked against its Redis claim only: %s", client_message_id, exc)
            return
        if existing is not None:
            raise Refused(ResultCode.DUPLICATE, f"message_id {client_message_id!r} accepted before (message log)",
                          outcome=Admission.DUPLICATE, existing_message_id=existing)

    def _price(self, request: MtRequest) -> int:
        """Parts x the destination's per-segment price; an MMS counts as one part."""
        try:
            parts = 1 if request.attachments else plan_encoding(request.message).segments
        except UnencodableText:
            parts = 1
        return parts * self.directory.price_per_segment(request.phone_number)


def accepted_payload(
    message_id: str, account: AccountView, request: MtRequest, priority: str, accepted_at: float
) -> dict[str, Any]:
    """The queued payload: everything the worker needs to record the message.

    The keys after ``accepted_at`` are shared with the bulk API (``docs/bulk.md``);
    their values here mean "Genesys behaviour": automatic encoding, no flash, no WAP
    Push, no batch, the price debited (0 unless the account is prepaid)."""
    return AcceptedMessage(
        id=message_id,
        account_id=account.id,
        client_message_id=request.message_id,
        phone_number=request.phone_number,
        sender=request.sender,
        message=request.message,
        carrier=request.carrier,
        receipt=request.receipt,
        app_id=request.app_id,
        conversation_id=request.conversation_id,
        priority=priority,
        attachments=[
            [a.content_type, base64.b64encode(a.content).decode("ascii")] for a in request.attachments
        ],
        accepted_at=accepted_at,
        encoding=None,
        flash=False,
        wap_push=False,
        batch_id=None,
        api="genesys",
        price=0,
        dlr=request.receipt,
    ).payload()
