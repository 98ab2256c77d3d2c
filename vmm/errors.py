"""The errors vmm reports to a user, each with its documented exit code."""

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the vmm command; docs/cli.md lists them."""

    OK = 0
    ABORTED = 1  # interrupted (Ctrl-C), or the input ended at a prompt
    USAGE = 2  # click's own code for a malformed command line
    INVALID = 3  # a malformed value: address, domain, quota, service, transport, pattern
    NOT_FOUND = 4  # the named object does not exist
    EXISTS = 5  # the object (or the address in another role) already exists
    CONFLICT = 6  # refused while other objects depend on it (without --force)
    DATABASE = 7  # the database is unreachable or failed
    FILESYSTEM = 8  # a mail directory could not be created or removed
    PASSWORD = 9  # passwords did not match, or none could be read
    TOOL = 10  # a program the command runs failed (openssl, Dovecot's doveadm)
    UNHEALTHY = 11  # `vmm status` found something wrong


class VmmError(Exception):
    """An error with a one-line message for the user and an exit code."""

    code: ExitCode = ExitCode.INVALID


class InvalidValue(VmmError):
    code = ExitCode.INVALID


class NotFound(VmmError):
    code = ExitCode.NOT_FOUND


class AlreadyExists(VmmError):
    code = ExitCode.EXISTS


class Conflict(VmmError):
    code = ExitCode.CONFLICT


class DatabaseError(VmmError):
    code = ExitCode.DATABASE


class FileSystemError(VmmError):
    """A file or directory could not be made, read, moved or removed: a Maildir, a
    backup archive, the DKIM map."""

    code = ExitCode.FILESYSTEM


class PasswordError(VmmError):
    code = ExitCode.PASSWORD


class ToolError(VmmError):
    """A program vmm runs failed: openssl making a key or a certificate, or Dovecot's
    doveadm copying a mailbox (`usermove`)."""

    code = ExitCode.TOOL


class Unhealthy(VmmError):
    """`vmm status` found something wrong (it listed what)."""

    code = ExitCode.UNHEALTHY
