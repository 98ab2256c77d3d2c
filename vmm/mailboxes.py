"""Domain and account directories under the mail root, in vmm's layout:
``<base>/<hash char>/<gid>`` per domain, ``<domain dir>/<uid>/Maildir`` per account; and
on a mail backend ``<base>/homes/<uid>`` (schema 0013), which ``python3 -m vmm.mailboxes
BASE`` makes of a single host's layout when its volume becomes the first backend's."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import sys
from pathlib import Path

from vmm.errors import FileSystemError, InvalidValue

HASH_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"
# Domains' gids and accounts' uids start here, clear of any system account (the identity
# columns of schema/0001_initial.sql); Postfix and Dovecot refuse lower ones.
FIRST_ID = 70000
# A mail backend's homes, below the mail root (schema 0013's account_address view).
BACKEND_HOMES = "homes"


def domain_directory(base: Path, gid: int) -> Path:
    # A random hash directory spreads domains over 36 directories, as vmm does.
    return base / secrets.choice(HASH_CHARS) / str(gid)


def imap_utf7(name: str) -> str:
    """RFC 3501 5.1.3 modified UTF-7 for an internationalised mailbox name."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def parse_folders(spec: str) -> list[str]:
    """mailbox.folders ("Drafts:Sent:Lists.Dovecot") as Maildir++ folder names."""
    folders = []
    for name in spec.split(":"):
        if not name:
            continue
        if "/" in name or name.startswith(".") or name.endswith(".") or ".." in name:
            raise InvalidValue(f"invalid mailbox folder name {name!r} in mailbox.folders")
        folders.append(imap_utf7(name))
    return folders


def create_domain_dir(path: Path, gid: int, mode: int) -> None:
    try:
        path.parent.mkdir(mode=0o751, parents=True, exist_ok=True)
        path.mkdir(mode=mode)
        os.chown(path, 0, gid)
        os.chmod(path, mode)
    except OSError as exc:
        raise FileSystemError(f"cannot create domain directory {path}: {exc.strerror}") from None


def create_account_dir(
    home: Path, uid: int, gid: int, mode: int, root: str, folders: list[str], subscribe: bool
) -> None:
    """The home with an empty Maildir, its folders and their subscriptions."""
    # Two system calls a directory (mkdir with its final mode, chown): `vmm import` makes
    # twenty directories for each of up to 100,000 accounts.
    maildir = os.path.join(home, root)
    directories = [str(home), maildir]
    for box in [maildir, *(os.path.join(maildir, "." + name) for name in folders)]:
        if box != maildir:
            directories.append(box)
        directories += [os.path.join(box, sub) for sub in ("cur", "new", "tmp")]
    previous = os.umask(0)  # the modes as given; the CLI is one thread
    made_home = False
    try:
        for directory in directories:
            os.mkdir(directory, mode)
            made_home = True
            os.chown(directory, uid, gid)
        if subscribe and folders:
            subscriptions = os.path.join(maildir, "subscriptions")
            fd = os.open(subscriptions, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write("".join(f"{name}\n" for name in folders))
            os.chown(subscriptions, uid, gid)
    except OSError as exc:
        if made_home:
            shutil.rmtree(home, ignore_errors=True)
        raise FileSystemError(f"cannot create mail directory {home}: {exc.strerror}") from None
    finally:
        os.umask(previous)


def remove_tree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise FileSystemError(f"cannot remove {path}: {exc.strerror}") from None


def retire(path: Path) -> Path | None:
    """Step one of removing a directory inside a transaction: rename it out of the way
    (atomic, reversible with ``restore``); the caller deletes it after the commit."""
    if not path.exists():
        return None
    retired = path.with_name(f".{path.name}.deleted-{secrets.token_hex(4)}")
    try:
        path.rename(retired)
    except OSError as exc:
        raise FileSystemError(f"cannot remove {path}: {exc.strerror}") from None
    return retired


def restore(retired: Path, path: Path) -> None:
    retired.rename(path)


def disk_usage(path: Path) -> int:
    """Bytes allocated below ``path``, as du(1) counts them."""
    total = 0
    for entry in [path, *path.rglob("*")]:
        try:
            total += entry.lstat().st_blocks * 512
        except FileNotFoundError:
            continue
    return total


def adopt_homes(base: Path) -> tuple[int, list[tuple[Path, str]]]:
    """Move every account home of vmm's layout below ``base`` to ``base/homes/<uid>``,
    where a mail backend's Dovecot finds it: the first backend added takes every account
    (vmm/backends.py), and with the single host's mail volume it takes their mail too.
    Renames within one file system: nothing is copied, UIDs and flags stay as they are.
    Returns how many moved, and each home left where it is with the reason: mostly that
    ``homes/<uid>`` exists already (made by a delivery or a login on this backend)."""
    moved, left = 0, []
    homes = base / BACKEND_HOMES
    for hash_dir in sorted(base.iterdir()):
        if len(hash_dir.name) != 1 or hash_dir.name not in HASH_CHARS:
            continue
        for home in sorted(hash_dir.glob("*/*")):
            # Domain and account directories are named by their ids; a retired home
            # (".UID.deleted-...", see retire) is not an account's.
            if not (home.parent.name.isdigit() and home.name.isdigit()) or not home.is_dir():
                continue
            target = homes / home.name
            if target.exists():
                left.append((home, f"{target} exists already"))
                continue
            try:
                home.rename(target)
            except OSError as exc:
                left.append((home, f"cannot move it: {exc.strerror}"))
                continue
            moved += 1
    return moved, left


def main() -> int:
    """The backend's entrypoint: report, never stop Dovecot's start over one home."""
    base = Path(sys.argv[1])
    moved, left = adopt_homes(base)
    if moved:
        print(f"moved {moved} account home(s) of a single host's layout into {base / BACKEND_HOMES}")
    for home, reason in left:
        print(f"left {home}: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
