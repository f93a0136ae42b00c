"""The operator's controls: the DND registry, per-account opt-outs (MO STOP/START),
spam rules, templates, the IP denylist.

The database holds every row. The DND registry and opt-outs, which can be large and
must be checked per destination inside the admission script, are mirrored into Redis
sets (``dnd``, ``optout:<account id>``) after each commit; :func:`resync_registries`
rebuilds them from the database (run when beat starts, and by ``smsagg bulk resync``).
Spam rules, templates and the denylist reach the ingress through the directory
snapshot (re-read every ``SMSAGG_DIRECTORY_REFRESH_SECONDS``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.bulk.models import DeniedNetwork, DndNumber, OptOut, SpamRule, Template
from app.bulk.request import normalize_destination
from app.bulk.rules import InvalidRule, compile_spam_rule, compile_template, stop_keyword_action
from app.bulk.store import BulkStore
from app.db.session import after_commit
from app.services.errors import InvalidValue, NotFound

_CHUNK = 5000


def _numbers(values: Iterable[str]) -> list[str]:
    numbers = []
    for value in values:
        number = normalize_destination(value)
        if number is None:
            raise InvalidValue(f"not an E.164 number: {value!r}")
        numbers.append(number)
    return numbers


def _store(store: BulkStore | None) -> BulkStore:
    if store is not None:
        return store
    from app.bulk.runtime import default_store

    return default_store()


# --- DND registry -----------------------------------------------------------------------

def dnd_add(session: Session, store: BulkStore, values: Iterable[str]) -> int:
    numbers = sorted(set(_numbers(values)))
    known = set()
    for start in range(0, len(numbers), _CHUNK):
        chunk = numbers[start : start + _CHUNK]
        known |= set(session.scalars(select(DndNumber.phone_number).where(DndNumber.phone_number.in_(chunk))))
    now = datetime.now(timezone.utc)
    session.add_all(DndNumber(phone_number=n, added_at=now) for n in numbers if n not in known)
    session.flush()
    after_commit(session, lambda: _sadd(store, store.keys.dnd(), numbers))
    return len(numbers) - len(known)


def dnd_remove(session: Session, store: BulkStore, values: Iterable[str]) -> int:
    numbers = _numbers(values)
    removed = session.execute(delete(DndNumber).where(DndNumber.phone_number.in_(numbers))).rowcount
    after_commit(session, lambda: numbers and store.client.srem(store.keys.dnd(), *numbers))
    return removed


def dnd_contains(session: Session, number: str) -> bool:
    return session.get(DndNumber, number) is not None


def dnd_list(session: Session, limit: int | None = None) -> list[str]:
    query = select(DndNumber.phone_number).order_by(DndNumber.phone_number)
    return list(session.scalars(query.limit(limit) if limit else query))


# --- opt-outs ---------------------------------------------------------------------------

def opt_out(session: Session, store: BulkStore | None, account_id: int, phone_number: str, *, source: str) -> bool:
    """Record that ``phone_number`` opted out of ``account_id``; False if it already had."""
    number = _numbers([phone_number])[0]
    if session.get(OptOut, (account_id, number)) is not None:
        return False
    session.add(OptOut(account_id=account_id, phone_number=number, source=source, at=datetime.now(timezone.utc)))
    session.flush()
    after_commit(session, lambda: _store(store).client.sadd(_store(store).keys.optouts(account_id), number))
    return True


def opt_in(session: Session, store: BulkStore | None, account_id: int, phone_number: str) -> bool:
    number = _numbers([phone_number])[0]
    row = session.get(OptOut, (account_id, number))
    if row is not None:
        session.delete(row)
        session.flush()
    after_commit(session, lambda: _store(store).client.srem(_store(store).keys.optouts(account_id), number))
    return row is not None


def record_mo_keyword(
    session: Session, account_id: int, phone_number: str, text: str, *, store: BulkStore | None = None
) -> str | None:
    """For the MO service: if ``text`` is a stop keyword, ``phone_number`` opts out of
    ``account_id`` (later MTs: 1042 on the bulk API, 99 on the Genesys API); START
    opts back in. Returns ``"stop"``, ``"start"`` or ``None`` (not a keyword: nothing
    done). Redis follows when the caller's transaction commits."""
    action = stop_keyword_action(text)
    if action is None or normalize_destination(phone_number) is None:
        return None
    if action == "stop":
        opt_out(session, store, account_id, phone_number, source="mo")
    else:
        opt_in(session, store, account_id, phone_number)
    return action


def optouts_of(session: Session, account_id: int) -> list[OptOut]:
    return list(session.scalars(select(OptOut).where(OptOut.account_id == account_id).order_by(OptOut.phone_number)))


# --- spam rules, templates, denylist ---------------------------------------------------------

def spam_add(session: Session, pattern: str, *, is_regex: bool) -> SpamRule:
    try:
        compile_spam_rule(pattern, is_regex)
    except InvalidRule as exc:
        raise InvalidValue(str(exc)) from exc
    if not pattern.strip():
        raise InvalidValue("a spam rule may not be blank")
    rule = SpamRule(pattern=pattern, is_regex=is_regex)
    session.add(rule)
    session.flush()
    return rule


def spam_remove(session: Session, rule_id: int) -> None:
    rule = session.get(SpamRule, rule_id)
    if rule is None:
        raise NotFound(f"no spam rule {rule_id}")
    session.delete(rule)


def spam_list(session: Session) -> list[SpamRule]:
    return list(session.scalars(select(SpamRule).order_by(SpamRule.id)))


def template_add(session: Session, account_id: int, body: str) -> Template:
    try:
        compile_template(body)
    except InvalidRule as exc:
        raise InvalidValue(str(exc)) from exc
    template = Template(account_id=account_id, body=body)
    session.add(template)
    session.flush()
    return template


def template_remove(session: Session, template_id: int) -> None:
    template = session.get(Template, template_id)
    if template is None:
        raise NotFound(f"no template {template_id}")
    session.delete(template)


def templates_of(session: Session, account_id: int | None = None) -> list[Template]:
    query = select(Template).order_by(Template.account_id, Template.id)
    if account_id is not None:
        query = query.where(Template.account_id == account_id)
    return list(session.scalars(query))


def deny_ip(session: Session, network: str, note: str | None = None) -> DeniedNetwork:
    try:
        canonical = str(ipaddress.ip_network(network, strict=False))
    except ValueError as exc:
        raise InvalidValue(f"not an IP address or CIDR: {network!r}") from exc
    row = session.scalar(select(DeniedNetwork).where(DeniedNetwork.network == canonical))
    if row is None:
        row = DeniedNetwork(network=canonical, note=note)
        session.add(row)
        session.flush()
    return row


def undeny_ip(session: Session, network: str) -> None:
    try:
        canonical = str(ipaddress.ip_network(network, strict=False))
    except ValueError as exc:
        raise InvalidValue(f"not an IP address or CIDR: {network!r}") from exc
    row = session.scalar(select(DeniedNetwork).where(DeniedNetwork.network == canonical))
    if row is None:
        raise NotFound(f"{canonical} is not denied")
    session.delete(row)


def denied_networks(session: Session) -> list[DeniedNetwork]:
    return list(session.scalars(select(DeniedNetwork).order_by(DeniedNetwork.network)))


# --- Redis mirror ---------------------------------------------------------------------------

def _sadd(store: BulkStore, key: str, members: list[str]) -> None:
    for start in range(0, len(members), _CHUNK):
        store.client.sadd(key, *members[start : start + _CHUNK])


def _replace_set(store: BulkStore, key: str, members: list[str]) -> None:
    temporary = f"{key}:rebuild"
    store.client.delete(temporary)
    _sadd(store, temporary, members)
    if members:
        store.client.rename(temporary, key)
    else:
        store.client.delete(key)


def resync_registries(session: Session, store: BulkStore) -> dict[str, int]:
    """Rebuild the Redis DND and opt-out sets from the database."""
    dnd = list(session.scalars(select(DndNumber.phone_number)))
    _replace_set(store, store.keys.dnd(), dnd)
    by_account: dict[int, list[str]] = {}
    for account_id, number in session.execute(select(OptOut.account_id, OptOut.phone_number)):
        by_account.setdefault(account_id, []).append(number)
    for key in store.client.scan_iter(match=store.keys.optouts("*"), count=1000):
        account = key.decode().rsplit(":", 1)[-1]
        if account.isdigit() and int(account) not in by_account:
            store.client.delete(key)
    for account_id, numbers in by_account.items():
        _replace_set(store, store.keys.optouts(account_id), numbers)
    return {"dnd": len(dnd), "optouts": sum(len(v) for v in by_account.values())}
