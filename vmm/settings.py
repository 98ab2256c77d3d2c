"""vmm.cfg's options (vmm.cfg(5)), kept in the ``settings`` table so that every
container sees what ``configset`` wrote. Only options that differ from the default are
stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vmm.db import Connection
from vmm.errors import InvalidValue, NotFound
from vmm.limits import parse_at_least, parse_default_transport, parse_storage, parse_text
from vmm.mtasts import parse_mode
from vmm.passwords import MIN_BLOWFISH_COST, Policy, Rounds, writable_scheme
from vmm.runtime import Runtime

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise InvalidValue(f"not a boolean: {text!r} (use true/false, yes/no, on/off, 1/0)")


def parse_int(text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise InvalidValue(f"not an integer: {text!r}") from None


def _parse_str(text: str) -> str:
    return parse_text(text, "setting")


def _password_scheme(text: str) -> str:
    return writable_scheme(text.strip(), Runtime.from_env().allow_weak_schemes)


def _blowfish_cost(text: str) -> int:
    return Rounds(blowfish=parse_int(text)).blowfish


def _at_least(minimum: int) -> Callable[[str], int]:
    return lambda text: parse_at_least(text, minimum)


def _only(allowed: str) -> Callable[[str], str]:
    """An option kept for vmm(1) compatibility whose value the stack fixes."""

    def parse(text: str) -> str:
        if text.strip().lower() != allowed.lower():
            raise InvalidValue(f"only {allowed!r} is supported here (Dovecot is set up for it)")
        return allowed

    return parse


@dataclass(frozen=True)
class Option:
    name: str
    default: str
    parse: Callable[[str], object]
    help: str


_OPTIONS = [
    Option("account.delete_directory", "false", parse_bool, "delete the home directory with the account"),
    Option("account.directory_mode", "448", parse_int, "mode of an account's directories (decimal)"),
    Option("account.disk_usage", "false", parse_bool, "always show the disk usage in userinfo"),
    Option("account.min_password_length", "12", _at_least(8), "shortest password a person may choose (>= 8)"),
    Option("account.password_length", "16", parse_int, "length of generated passwords (>= 8)"),
    Option("account.random_password", "false", parse_bool, "generate a password when none is given"),
    Option("domain.auto_postmaster", "true", parse_bool, "create postmaster@ with each new domain"),
    Option("domain.delete_directory", "false", parse_bool, "delete the domain directory with the domain"),
    Option("domain.directory_mode", "504", parse_int, "mode of a domain directory (decimal)"),
    Option("domain.force_deletion", "false", parse_bool, "domaindelete always acts as with --force"),
    Option("domain.imap", "true", parse_bool, "new domains allow IMAP"),
    Option("domain.pop3", "true", parse_bool, "new domains allow POP3"),
    Option("domain.sieve", "true", parse_bool, "new domains allow ManageSieve"),
    Option("domain.smtp", "true", parse_bool, "new domains allow SMTP AUTH"),
    Option("domain.quota_bytes", "0", parse_storage, "storage quota of new domains (b, k, M, G suffix)"),
    Option("domain.quota_messages", "0", parse_int, "message quota of new domains"),
    Option(
        "domain.transport",
        "",
        parse_default_transport,
        "transport of new domains; empty: the stack's LMTP (Dovecot), which they follow",
    ),
    Option("mailbox.folders", "Drafts:Sent:Templates:Trash", _parse_str, "folders created with an account"),
    Option("mailbox.format", "maildir", _only("maildir"), "mailbox format (maildir only)"),
    Option("mailbox.root", "Maildir", _only("Maildir"), "mailbox root in the home directory"),
    Option("mailbox.subscribe", "true", parse_bool, "subscribe the created folders"),
    Option("misc.base_directory", "/srv/mail", _parse_str, "where domain directories are created"),
    Option(
        "misc.crypt_blowfish_rounds",
        str(MIN_BLOWFISH_COST),
        _blowfish_cost,
        f"cost of BLF-CRYPT ({MIN_BLOWFISH_COST}-31)",
    ),
    Option("misc.crypt_sha256_rounds", "5000", parse_int, "rounds of SHA256-CRYPT"),
    Option("misc.crypt_sha512_rounds", "5000", parse_int, "rounds of SHA512-CRYPT"),
    # Not in vmm.cfg(5): the MTA-STS policy every domain publishes (vmm/mtasts.py).
    Option(
        "mta_sts.mode",
        "testing",
        parse_mode,
        "MTA-STS mode of every domain: testing (report only), enforce or none",
    ),
    # Not in vmm.cfg(5): what one login may send on 465/587 (vmm/policy.py).
    Option(
        "submission.messages_per_hour",
        "200",
        _at_least(1),
        "messages one login may send an hour; past it mail is deferred (4xx)",
    ),
    Option(
        "submission.recipients_per_message",
        "100",
        _at_least(1),
        "recipients one message may have; past it they are deferred (4xx)",
    ),
    Option(
        "misc.password_scheme",
        "BLF-CRYPT",
        _password_scheme,
        "scheme of new password hashes (vmm lp); weak ones need VMM_ALLOW_WEAK_SCHEMES",
    ),
]
OPTIONS: dict[str, Option] = {option.name: option for option in _OPTIONS}


def option(name: str) -> Option:
    try:
        return OPTIONS[name]
    except KeyError:
        raise NotFound(f"unknown configuration option: {name!r}") from None


class Settings:
    """The options in force, read once per command from the database."""

    def __init__(self, stored: dict[str, str]) -> None:
        self._values = {name: stored.get(name, opt.default) for name, opt in OPTIONS.items()}

    @classmethod
    def load(cls, conn: Connection) -> Settings:
        rows = conn.execute("SELECT name, value FROM settings").fetchall()
        return cls({str(name): str(value) for name, value in rows})

    def get(self, name: str) -> str:
        return self._values[option(name).name]

    def flag(self, name: str) -> bool:
        return parse_bool(self.get(name))

    def number(self, name: str) -> int:
        return parse_int(self.get(name))

    def password_policy(self, allow_weak: bool) -> Policy:
        return Policy(
            scheme=self.get("misc.password_scheme"),
            rounds=Rounds(
                blowfish=self.number("misc.crypt_blowfish_rounds"),
                sha256=self.number("misc.crypt_sha256_rounds"),
                sha512=self.number("misc.crypt_sha512_rounds"),
            ),
            min_length=self.number("account.min_password_length"),
            allow_weak=allow_weak,
        )

    def items(self) -> list[tuple[str, str]]:
        return sorted(self._values.items())


def store(conn: Connection, name: str, value: str) -> str:
    """Validate and store one option; returns the value as stored."""
    opt = option(name)
    opt.parse(value)
    conn.execute(
        "INSERT INTO settings (name, value) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        (opt.name, value),
    )
    return value
