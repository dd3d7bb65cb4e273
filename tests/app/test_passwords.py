from argon2 import PasswordHasher

from atsboost.app.passwords import hash_password, needs_rehash, verify_password


def test_hash_is_argon2id_and_verifies():
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "Correct horse battery")


def test_hashes_are_salted():
    assert hash_password("same") != hash_password("same")


def test_garbage_hash_does_not_verify():
    assert not verify_password("not-a-hash", "anything")


def test_weaker_parameters_need_a_rehash():
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash("pw")
    assert needs_rehash(weak)
    assert not needs_rehash(hash_password("pw"))
