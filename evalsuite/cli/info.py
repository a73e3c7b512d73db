"""``evalsuite ls``: the protocols (versions, options) and the registered models."""

from __future__ import annotations

import click


@click.command("ls")
def ls_cmd() -> None:
    """List protocols (with versions and options) and models (with their weights)."""
    from ..api import list_models
    from ..protocols import load_protocols

    click.echo("Protocols:")
    for p in load_protocols().values():
        opts = ", ".join(f"{k}={v}" for k, v in p.options.items())
        click.echo(f"  {p.id:<16} {p.summary}\n  {'':<16} options: {opts}")
    click.echo("\nModels:")
    for name, summary in list_models():
        click.echo(f"  {name:<22} {summary}")


def register(cli: click.Group) -> None:
    cli.add_command(ls_cmd)
