"""``evalsuite ls``: the protocols (versions, options) and the registered models (weights, licence,
parameters, how each is verified against its official code, its own options)."""

from __future__ import annotations

import click

WHAT = ("protocols", "models", "prompts", "metrics", "presets")


def _protocols() -> None:
    from ..protocols import load_protocols

    click.echo("Protocols:")
    for p in load_protocols().values():
        opts = ", ".join(f"{k}={v}" for k, v in p.options.items())
        click.echo(f"  {p.id:<16} {p.summary}\n  {'':<16} options: {opts}")
    from .info_rules import protocol_options

    protocol_options()


def _weights_text(spec) -> str:
    w = spec.weights
    if w is None:
        return "no weights"
    check = "SHA-256 published" if w.sha256 else "SHA-256 recorded at the first download"
    gated = f"; gated: {w.access}, then set {' or '.join(w.token_env)}" if w.token_env else ""
    return f"{w.filename} from {w.url} ({check}{gated})"


def _models() -> None:
    from ..models import get_spec, model_names

    click.echo("Models:")
    for name in model_names():
        try:
            spec = get_spec(name)
        except Exception as e:  # a broken third-party plugin must not hide the others
            click.echo(f"  {name:<22} (failed to load: {e})")
            continue
        click.echo(f"  {name:<22} {spec.summary}")
        pad = " " * 25
        facts = []
        if spec.parameters:
            facts.append(f"{spec.parameters / 1e6:.1f} M parameters")
        if spec.licence:
            facts.append(f"licence {spec.licence}")
        if facts:
            click.echo(f"{pad}{'; '.join(facts)}")
        click.echo(f"{pad}weights: {_weights_text(spec)}")
        if spec.verification:
            click.echo(f"{pad}verified: {spec.verification}")
        for key, opt in spec.options.items():
            value = str(opt.default).lower() if isinstance(opt.default, bool) else opt.default
            choices = f" (one of {', '.join(map(str, opt.choices))})" if opt.choices else ""
            click.echo(f"{pad}option --set {key}={value}{choices}: {opt.help}")


@click.command("ls")
@click.argument("what", required=False, type=click.Choice(WHAT))
def ls_cmd(what: str | None) -> None:
    """List protocols (with versions and options), models (weights, licence, parameters, how each is
    verified against its official code, and the official predictor's options with their defaults), prompt
    rules, metrics and presets (each option with its type, bounds and help)."""
    if what in (None, "protocols"):
        _protocols()
    if what is None:
        click.echo("")
    if what in (None, "models"):
        _models()
    from . import info_rules

    for kind in ("prompts", "metrics", "presets"):
        if what in (None, kind):
            click.echo("")
            getattr(info_rules, kind)()


def register(cli: click.Group) -> None:
    cli.add_command(ls_cmd)
