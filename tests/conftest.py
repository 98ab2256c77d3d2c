"""Shared by every test: no Ryuk reaper (there is no registry to pull it from), so each
fixture removes what it starts; test containers carry the name prefix ``vmmtest``."""

import os

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
