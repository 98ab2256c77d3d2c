"""The vmm command: one function per vmm(1) subcommand, in one module per group; the
import order is the order of `vmm help` (the man page's)."""

from vmm.cli import general, domain, account, alias, bulk, dkim, tls, status, backup, backend  # noqa: F401, I001 (registers the commands)
from vmm.cli.app import app, main

__all__ = ["app", "main"]
