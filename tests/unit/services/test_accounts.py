"""Account, sender, carrier and route management, on SQLite and PostgreSQL."""

import pytest

from app.db.session import session_scope
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.errors import AlreadyExists, InvalidValue, NotFound
from app.services.passwords import verify_password


def create(session, login="acme", senders=("99222",), **options):
    return svc.create_account(session, login, "pw", senders=senders, options=AccountOptions(**options),
                              default_max_length=1600)


def test_create_account_with_defaults_and_senders(database_url):
    with session_scope(database_url) as session:
        account = create(session, senders=("99222", "ACME"))
    with session_scope(database_url) as session:
        shown = svc.describe_account(svc.get_account(session, "acme"))
        stored = svc.get_account(session, "acme").password_hash
    assert shown["default_priority"] == "BULK"
    assert shown["senders"] == ["99222", "ACME"]
    assert shown["max_message_length"] == 1600 and shown["message_id_optional"] is False
    assert "password" not in str(shown) and verify_password("pw", stored)
    assert len(shown["callback_secret"]) == 64
    assert account.id


def test_duplicate_login_is_refused(database_url):
    with session_scope(database_url) as session:
        create(session)
    with pytest.raises(AlreadyExists), session_scope(database_url) as session:
        create(session, senders=())


def test_update_changes_only_what_is_given(database_url):
    with session_scope(database_url) as session:
        create(session, rate=10, burst=20)
    with session_scope(database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(priority="interactive", allowed_ips=("10.0.0.0/8",)))
    with session_scope(database_url) as session:
        shown = svc.describe_account(svc.get_account(session, "acme"))
    assert shown["default_priority"] == "INTERACTIVE"
    assert shown["rate"] == 10 and shown["burst"] == 20
    assert shown["allowed_ips"] == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    "options",
    [dict(priority="URGENT"), dict(allowed_ips=("not-an-ip",)), dict(dr_url="ftp://x"), dict(burst=0),
     dict(max_length=0), dict(rate=-1)],
)
def test_invalid_account_options_are_refused(database_url, options):
    with pytest.raises(InvalidValue), session_scope(database_url) as session:
        create(session, **options)


def test_a_sender_belongs_to_one_account(database_url):
    with session_scope(database_url) as session:
        create(session, "one")
        create(session, "two", senders=())
    with pytest.raises(AlreadyExists), session_scope(database_url) as session:
        svc.add_sender(session, "99222", login="two")


def test_invalid_sender_is_refused(database_url):
    with pytest.raises(InvalidValue), session_scope(database_url) as session:
        create(session, senders=("<bad>",))


def test_carriers_and_longest_prefix_routes(database_url):
    with session_scope(database_url) as session:
        svc.add_carrier(session, 99901, "us-smpp", connector="smpp", settings={"host": "h"}, throughput=100)
        svc.add_carrier(session, 99902, "us-http", connector="http", settings={"url": "http://x"}, throughput=None)
        svc.add_route(session, "1", 99901)
        svc.add_route(session, "+1202", 99902)
    with session_scope(database_url) as session:
        routes = [(r.prefix, r.carrier_id) for r in svc.list_routes(session)]
    assert routes == [("1", 99901), ("1202", 99902)]


@pytest.mark.parametrize("prefix", ["abc", "0044", "999"])
def test_route_prefix_must_start_with_a_country_code(database_url, prefix):
    with session_scope(database_url) as session:
        svc.add_carrier(session, 1, "c", connector="http", settings={}, throughput=None)
    with pytest.raises(InvalidValue), session_scope(database_url) as session:
        svc.add_route(session, prefix, 1)


def test_route_to_unknown_carrier_is_refused(database_url):
    with pytest.raises(NotFound), session_scope(database_url) as session:
        svc.add_route(session, "44", 12345)


def test_removing_a_carrier_removes_its_routes(database_url):
    with session_scope(database_url) as session:
        svc.add_carrier(session, 5, "c", connector="http", settings={}, throughput=None)
        svc.add_route(session, "44", 5)
    with session_scope(database_url) as session:
        svc.remove_carrier(session, 5)
    with session_scope(database_url) as session:
        assert svc.list_routes(session) == [] and svc.list_carriers(session) == []
