"""How the subcommands print: vmm's info layout, lists, and JSON with stable keys."""

from __future__ import annotations

import json

import typer


def show(title: str, rows: list[tuple[str, object]]) -> None:
    """vmm's info layout: a title, a rule, and dotted labels."""
    width = max(len(label) for label, _ in rows) + 3
    typer.echo(f"{title}\n{'-' * len(title)}")
    for label, value in rows:
        typer.echo(f"\t{label.ljust(width, '.')}: {value}")


def show_list(title: str, items: list[str], empty: str = "None") -> None:
    typer.echo(f"{title}\n{'-' * len(title)}")
    for item in items or [empty]:
        typer.echo(f"\t{item}")


def show_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
