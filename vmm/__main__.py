"""``python3 -m vmm``: the vmm command."""

from vmm.cli import main

main()
