from app.services.passwords import dummy_hash, hash_password, verify_password


def test_hash_is_salted_scrypt_and_verifies():
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first.startswith("scrypt$") and first != second
    assert "s3cret" not in first
    assert verify_password("s3cret", first) and verify_password("s3cret", second)
    assert not verify_password("S3cret", first)


def test_malformed_stored_hash_is_a_plain_failure():
    for stored in ["", "plain", "scrypt$x$y$z$a$b", "bcrypt$1$2$3$aa$bb"]:
        assert verify_password("x", stored) is False


def test_dummy_hash_matches_nothing_useful():
    assert not verify_password("", dummy_hash())
