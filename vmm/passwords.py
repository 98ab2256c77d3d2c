"""Password hashes in the formats Dovecot 2.4 verifies: ``{SCHEME}hash``, with the
``.HEX`` / ``.B64`` encoding suffixes for the plain digest schemes."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import string
from dataclasses import dataclass

from passlib.hash import argon2, bcrypt, sha256_crypt, sha512_crypt

from vmm.errors import InvalidValue, PasswordError

# passlib 1.7.4 logs a harmless traceback while probing bcrypt >= 4's version.
logging.getLogger("passlib").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Scheme:
    name: str
    weak: bool
    note: str


# What vmm writes, strongest first. Every one is verified by `doveadm pw -t` in the
# e2e tests against the shipped Dovecot.
WRITABLE = [
    Scheme("BLF-CRYPT", False, "bcrypt; the default (cost: misc.crypt_blowfish_rounds)"),
    Scheme("ARGON2ID", False, "memory-hard; 64 MiB per check in Dovecot's auth worker"),
    Scheme("ARGON2I", False, "memory-hard; 64 MiB per check in Dovecot's auth worker"),
    Scheme("SHA512-CRYPT", False, "salted, iterated (misc.crypt_sha512_rounds)"),
    Scheme("SHA256-CRYPT", False, "salted, iterated (misc.crypt_sha256_rounds)"),
    Scheme("PBKDF2", False, "PBKDF2-HMAC-SHA1, 5000 rounds, Dovecot's format"),
    Scheme("SSHA512", False, "salted but fast: weak against offline guessing"),
    Scheme("SSHA256", False, "salted but fast: weak against offline guessing"),
    Scheme("SSHA", False, "salted SHA-1, fast: weak against offline guessing"),
    Scheme("SHA512", True, "unsalted digest"),
    Scheme("SHA256", True, "unsalted digest"),
    Scheme("SHA1", True, "unsalted digest"),
]
# Verified by Dovecot only when auth_allow_weak_schemes is on: accepted solely as
# ready hashes imported with `userpassword --hash`.
REFUSED_BY_DOVECOT = ["PLAIN-MD4", "PLAIN-MD5", "LDAP-MD5", "SMD5", "MD5-CRYPT", "DES-CRYPT"]
# Verified by Dovecot, importable as ready hashes, never written by vmm; the value is
# whether vmm calls it weak (readable or cheap to guess offline).
IMPORT_ONLY = {
    "SCRAM-SHA-1": False,
    "SCRAM-SHA-256": False,
    "CRAM-MD5": True,
    "DIGEST-MD5": True,
    "CLEAR": True,
    "PLAIN": True,
    "SHA": True,
}
ENCODINGS = [".HEX", ".B64", ".BASE64"]
DEFAULT_SCHEME = "BLF-CRYPT"
_WRITABLE = {scheme.name: scheme for scheme in WRITABLE}
# Legacy: every scheme vmm calls weak. An account that logs in with one of them gets its
# password hashed again in the installation's scheme (vmm/rehash.py, run by Dovecot).
LEGACY_SCHEMES = tuple(
    sorted(
        [scheme.name for scheme in WRITABLE if scheme.weak]
        + [name for name, weak in IMPORT_ONLY.items() if weak]
        + REFUSED_BY_DOVECOT
    )
)
# Dovecot's plain digest schemes and the hashlib algorithm behind each.
_DIGESTS = {"SHA512": "sha512", "SHA256": "sha256", "SHA1": "sha1"}
_SALTED_DIGESTS = {"SSHA512": "sha512", "SSHA256": "sha256", "SSHA": "sha1"}


# bcrypt's cost is a power of two: below 10 (about 50 ms a check here) a stolen hash
# is guessed too cheaply offline; 31 is bcrypt's maximum.
MIN_BLOWFISH_COST = 10


@dataclass(frozen=True)
class Rounds:
    blowfish: int = MIN_BLOWFISH_COST
    sha256: int = 5000
    sha512: int = 5000

    def __post_init__(self) -> None:
        if not MIN_BLOWFISH_COST <= self.blowfish <= 31:
            raise InvalidValue(f"misc.crypt_blowfish_rounds must be in {MIN_BLOWFISH_COST}-31")
        for rounds in (self.sha256, self.sha512):
            if not 1000 <= rounds <= 999_999_999:
                raise InvalidValue("misc.crypt_sha*_rounds must be in 1000-999999999")


def scheme_of(stored: str) -> str:
    """The scheme of a stored ``{SCHEME.ENC}hash``, without its encoding: ``SHA512``
    for ``{SHA512.HEX}...`` (as the SQL function password_scheme in vmm/schema)."""
    return stored[1:].partition("}")[0].partition(".")[0].upper()


def split_scheme(spec: str) -> tuple[str, str]:
    """``"SSHA512.hex"`` -> ``("SSHA512", ".HEX")``; validates both parts."""
    name, dot, encoding = spec.upper().partition(".")
    encoding = dot + encoding
    if name not in _WRITABLE:
        known = ", ".join(scheme.name for scheme in WRITABLE)
        raise InvalidValue(f"unknown or unsupported password scheme {spec!r} (known: {known})")
    if encoding and encoding not in ENCODINGS:
        raise InvalidValue(f"unknown encoding suffix {encoding!r} (known: {' '.join(ENCODINGS)})")
    if encoding and name not in _DIGESTS and name not in _SALTED_DIGESTS:
        raise InvalidValue(f"the scheme {name} takes no encoding suffix")
    return name, encoding


def hash_password(password: str, spec: str = DEFAULT_SCHEME, rounds: Rounds | None = None) -> str:
    """The ``{SCHEME}hash`` of ``password`` as Dovecot expects it."""
    rounds = rounds or Rounds()
    name, encoding = split_scheme(spec)
    secret = password.encode("utf-8")
    if name == "BLF-CRYPT":
        value = bcrypt.using(rounds=rounds.blowfish, ident="2y").hash(password)
    elif name in ("ARGON2ID", "ARGON2I"):
        # libsodium, which Dovecot uses, verifies parallelism 1 only.
        value = argon2.using(
            type="id" if name == "ARGON2ID" else "i",
            memory_cost=65536,
            time_cost=3,
            parallelism=1,
        ).hash(password)
    elif name == "SHA512-CRYPT":
        value = sha512_crypt.using(rounds=rounds.sha512).hash(password)
    elif name == "SHA256-CRYPT":
        value = sha256_crypt.using(rounds=rounds.sha256).hash(password)
    elif name == "PBKDF2":
        value = _pbkdf2(secret)
    elif name in _SALTED_DIGESTS:
        salt = secrets.token_bytes(16)
        value = _encode(hashlib.new(_SALTED_DIGESTS[name], secret + salt).digest() + salt, encoding)
    else:
        value = _encode(hashlib.new(_DIGESTS[name], secret).digest(), encoding)
    return "{" + name + encoding + "}" + value


def _pbkdf2(secret: bytes, iterations: int = 5000) -> str:
    # Dovecot's PBKDF2 format: $1$<salt>$<rounds>$<hex PBKDF2-HMAC-SHA1, 20 bytes>.
    alphabet = string.ascii_letters + string.digits
    salt = "".join(secrets.choice(alphabet) for _ in range(16))
    derived = hashlib.pbkdf2_hmac("sha1", secret, salt.encode(), iterations, 20)
    return f"$1${salt}${iterations}${derived.hex()}"


def _encode(raw: bytes, encoding: str) -> str:
    return raw.hex() if encoding == ".HEX" else base64.b64encode(raw).decode("ascii")


def writable_scheme(spec: str, allow_weak: bool) -> str:
    """``spec`` if vmm may hash new passwords with it: a known scheme, and a weak one
    only where the postmaster allowed weak schemes (VMM_ALLOW_WEAK_SCHEMES)."""
    name, _ = split_scheme(spec)
    if _WRITABLE[name].weak and not allow_weak:
        raise InvalidValue(
            f"{name} is a weak scheme ({_WRITABLE[name].note}); it needs VMM_ALLOW_WEAK_SCHEMES=yes"
        )
    return spec


@dataclass(frozen=True)
class Policy:
    """What new password material must meet: the installation's scheme and costs, a
    minimum length for passwords people choose, weak schemes only where allowed."""

    scheme: str
    rounds: Rounds
    min_length: int
    allow_weak: bool

    def hash_new(self, password: str, scheme: str | None = None) -> str:
        """The hash of a password someone chose, in ``scheme`` or the installation's."""
        spec = writable_scheme(scheme or self.scheme, self.allow_weak)
        self.check_length(password)
        return hash_password(password, spec, self.rounds)

    def check_length(self, password: str) -> None:
        if len(password) < self.min_length:
            raise PasswordError(
                f"the password is shorter than {self.min_length} characters (account.min_password_length)"
            )

    def ready_hash(self, value: str) -> tuple[str, bool]:
        """A ready ``{SCHEME}hash`` to store as it is, and whether it is weak (then only
        where allowed)."""
        return check_ready_hash(value, self.allow_weak)


def check_ready_hash(value: str, allow_weak: bool) -> tuple[str, bool]:
    """Validate an imported ``{SCHEME}hash``; returns it and whether it is weak. Weak
    material (readable, unsalted or cheap to guess) only with ``allow_weak``."""
    if not value.startswith("{") or "}" not in value:
        raise InvalidValue("a ready hash must start with {SCHEME}, as `doveadm pw` prints it")
    spec, _, digest = value[1:].partition("}")
    name = spec.upper().partition(".")[0]
    if not digest or any(ch.isspace() or ord(ch) < 32 for ch in digest):
        raise InvalidValue("the hash after {SCHEME} is empty or holds white space")
    if name in REFUSED_BY_DOVECOT:
        if not allow_weak:
            raise InvalidValue(f"{name} is a weak scheme Dovecot refuses; enable weak schemes to import it")
        return "{" + spec.upper() + "}" + digest, True
    if name not in _WRITABLE and name not in IMPORT_ONLY:
        raise InvalidValue(f"unknown password scheme {name!r}")
    weak = IMPORT_ONLY[name] if name in IMPORT_ONLY else _WRITABLE[name].weak
    if weak and not allow_weak:
        raise InvalidValue(
            f"{name} is weak (readable, unsalted or cheap to guess); "
            "importing it needs VMM_ALLOW_WEAK_SCHEMES=yes"
        )
    return "{" + spec.upper() + "}" + digest, weak


def random_password(length: int) -> str:
    """A generated password of at least 8 characters, unambiguous to read aloud."""
    alphabet = "".join(ch for ch in string.ascii_letters + string.digits if ch not in "Il1O0o")
    return "".join(secrets.choice(alphabet) for _ in range(max(8, length)))
