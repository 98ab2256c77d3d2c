"""Password hashes in Dovecot's formats, checked with independent verifiers."""

import base64
import hashlib

import pytest
from passlib.hash import argon2, bcrypt, sha256_crypt, sha512_crypt

from vmm import passwords
from vmm.errors import InvalidValue, PasswordError

PASSWORD = "Corr3ct horse ✓"


def _verify(stored: str, password: str) -> bool:
    scheme, _, value = stored[1:].partition("}")
    name, _, encoding = scheme.partition(".")
    if name == "BLF-CRYPT":
        return bool(bcrypt.verify(password, value))
    if name in ("ARGON2ID", "ARGON2I"):
        return bool(argon2.verify(password, value))
    if name == "SHA512-CRYPT":
        return bool(sha512_crypt.verify(password, value))
    if name == "SHA256-CRYPT":
        return bool(sha256_crypt.verify(password, value))
    if name == "PBKDF2":
        _, _, salt, rounds, digest = value.split("$")
        derived = hashlib.pbkdf2_hmac("sha1", password.encode(), salt.encode(), int(rounds), 20)
        return derived.hex() == digest
    raw = bytes.fromhex(value) if encoding == "HEX" else base64.b64decode(value)
    algorithm = {
        "SSHA512": "sha512",
        "SSHA256": "sha256",
        "SSHA": "sha1",
        "SHA512": "sha512",
        "SHA256": "sha256",
        "SHA1": "sha1",
    }[name]
    size = hashlib.new(algorithm).digest_size
    expected, tail = raw[:size], raw[size:]
    return hashlib.new(algorithm, password.encode() + tail).digest() == expected


@pytest.mark.parametrize("scheme", [s.name for s in passwords.WRITABLE])
def test_every_writable_scheme_verifies_and_rejects_a_wrong_password(scheme: str) -> None:
    stored = passwords.hash_password(PASSWORD, scheme, passwords.Rounds())
    assert stored.startswith("{" + scheme + "}")
    assert _verify(stored, PASSWORD)
    assert not _verify(stored, PASSWORD + "x")


def test_salted_hashes_differ_for_the_same_password() -> None:
    assert passwords.hash_password("x", "SSHA512") != passwords.hash_password("x", "SSHA512")


@pytest.mark.parametrize("spec", ["SSHA512.hex", "SHA256.B64", "ssha.HEX"])
def test_encoding_suffixes(spec: str) -> None:
    stored = passwords.hash_password(PASSWORD, spec)
    assert stored.startswith("{" + spec.upper() + "}")
    assert _verify(stored, PASSWORD)


def test_default_scheme_is_strong_and_salted() -> None:
    stored = passwords.hash_password(PASSWORD)
    assert stored.startswith("{BLF-CRYPT}$2y$10$")


@pytest.mark.parametrize("spec", ["MD5", "PLAIN-MD5", "BLF-CRYPT.HEX", "SSHA.ROT13", ""])
def test_unknown_or_unwritable_schemes_are_refused(spec: str) -> None:
    with pytest.raises(InvalidValue):
        passwords.hash_password("x", spec)


@pytest.mark.parametrize(
    "ready",
    [
        "{PLAIN-MD5}1a1dc91c907325c69271ddf0c944bc72",
        "{PLAIN}secret",
        "{CLEAR}secret",
        "{CRAM-MD5}" + "a" * 64,
        "{SHA1}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
        "{SHA256.HEX}" + "b" * 64,
    ],
)
def test_weak_or_plaintext_ready_hashes_need_weak_schemes_enabled(ready: str) -> None:
    with pytest.raises(InvalidValue, match="weak"):
        passwords.check_ready_hash(ready, allow_weak=False)
    assert passwords.check_ready_hash(ready, allow_weak=True) == (
        ready.upper().partition("}")[0] + "}" + ready.partition("}")[2],
        True,
    )


def test_weak_schemes_write_nothing_unless_allowed() -> None:
    with pytest.raises(InvalidValue, match="VMM_ALLOW_WEAK_SCHEMES"):
        passwords.writable_scheme("SHA1", allow_weak=False)
    assert passwords.writable_scheme("SHA1", allow_weak=True) == "SHA1"
    assert passwords.writable_scheme("SSHA512.hex", allow_weak=False) == "SSHA512.hex"


def test_bcrypt_costs_below_ten_are_refused() -> None:
    with pytest.raises(InvalidValue, match="10-31"):
        passwords.Rounds(blowfish=9)


def test_a_chosen_password_shorter_than_the_minimum_is_refused() -> None:
    policy = passwords.Policy("BLF-CRYPT", passwords.Rounds(), min_length=12, allow_weak=False)
    with pytest.raises(PasswordError, match="shorter than 12"):
        policy.hash_new("elevenchars")
    assert policy.hash_new("twelve chars").startswith("{BLF-CRYPT}$2y$10$")


def test_ready_hash_of_a_strong_scheme_is_kept() -> None:
    ready = passwords.hash_password("x", "SHA512-CRYPT")
    assert passwords.check_ready_hash(ready, allow_weak=False) == (ready, False)


def test_random_passwords_have_at_least_eight_characters() -> None:
    assert len(passwords.random_password(3)) == 8
    assert passwords.random_password(20) != passwords.random_password(20)


def test_legacy_schemes_are_the_weak_ones_vmm_06_and_05_wrote() -> None:
    # vmm 0.6's default (CRAM-MD5) and what 0.5 installations hold are rehashed at login;
    # no scheme vmm writes by default or calls strong is.
    assert {"CRAM-MD5", "PLAIN-MD5", "MD5-CRYPT", "SHA1", "CLEAR"} <= set(passwords.LEGACY_SCHEMES)
    strong = {scheme.name for scheme in passwords.WRITABLE if not scheme.weak}
    assert passwords.DEFAULT_SCHEME in strong and not strong & set(passwords.LEGACY_SCHEMES)
    assert passwords.scheme_of("{sha512.HEX}00") == "SHA512"
