"""A command's session: its connection, its one transaction, the settings in force, and
the file-system steps that belong to the transaction (undone if it fails, finished once
it has committed)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vmm import db, mailboxes, passwords
from vmm.errors import VmmError
from vmm.runtime import Runtime
from vmm.settings import Settings


@dataclass
class Session:
    """What one command works with. File-system steps register how to undo them if the
    transaction fails, and what to finish once it has committed."""

    conn: db.Connection
    settings: Settings
    runtime: Runtime
    on_rollback: list[Callable[[], None]] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    @property
    def password_policy(self) -> passwords.Policy:
        return self.settings.password_policy(self.runtime.allow_weak_schemes)

    def created(self, path: Path) -> None:
        self.on_rollback.append(lambda: mailboxes.remove_tree(path))

    def remove_later(self, path: Path) -> None:
        retired = mailboxes.retire(path)
        if retired is not None:
            self.on_rollback.append(lambda: mailboxes.restore(retired, path))
            self.after_commit.append(lambda: mailboxes.remove_tree(retired))


@contextmanager
def open_session(attempts: int = 1) -> Iterator[Session]:
    """A command's connection and single transaction, with the settings in force."""
    runtime = Runtime.from_env()
    with db.connect(runtime, attempts=attempts) as conn:
        current: Session | None = None
        try:
            with db.transaction(conn):
                db.share_with_writers(conn)
                current = Session(conn, Settings.load(conn), runtime)
                yield current
        except BaseException:
            # The command's own error is what the user must see: a step that cannot be
            # undone is a warning beside it, not a traceback instead of it.
            run_each(reversed(current.on_rollback if current else []), "could not undo a step")
            raise
        # Committed: the change is made and the command succeeds; what fails now is a
        # leftover to clean up by hand, said as such.
        run_each(current.after_commit, "the change is made, but a step after it failed")


def run_each(steps: Iterable[Callable[[], None]], warning: str) -> None:
    """Run every step; one that fails is a warning on stderr and the others still run."""
    for step in steps:
        try:
            step()
        except (VmmError, OSError) as exc:
            print(f"Warning: {warning}: {exc}", file=sys.stderr)
