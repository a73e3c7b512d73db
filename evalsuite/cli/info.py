"""``evalsuite ls``: the protocols (versions, options), the registered models (weights, licence,
parameters, how each is verified against its official code, its own options) and the registered
datasets (format, where they lie, how to get them, licence, their protocols)."""

from __future__ import annotations

import click

from .options import dataset_file_option

WHAT = ("protocols", "models", "datasets", "prompts", "metrics", "presets")


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


def _files_text(spec) -> str:
    if not spec.files:
        return f"not downloadable by evalsuite: {spec.obtain}" if spec.obtain else "no files declared"
    parts = []
    for f in spec.all_files:
        check = (
            f"SHA-256 {f.sha256[:12]}… published" if f.sha256 else "SHA-256 recorded at the first download"
        )
        parts.append(f"{f.filename} ({check})")
    return f"`evalsuite download {spec.name}`: " + ", ".join(parts)


def _present(spec) -> str:
    """Whether the dataset's annotations are where a run would look (no file is read)."""
    from ..data.locate import locate
    from ..errors import EvalsuiteError

    try:
        return f"yes, {locate(spec.name).ann_file}"
    except EvalsuiteError:
        return "no (`evalsuite doctor` says what is missing)"


def _datasets() -> None:
    from ..data.locate import default_root
    from ..data.registry import broken_datasets, datasets
    from ..protocols import load_protocols

    click.echo("Datasets:")
    protocols = load_protocols()
    pad = " " * 20
    for name, spec in datasets().items():
        official = f" (records: {spec.recorded_name})" if spec.recorded_name != name else ""
        click.echo(f"  {name:<17} {spec.title}{official}: {spec.summary}".rstrip(": "))
        options = ", ".join(f"{k}={v}" for k, v in spec.format_options.items())
        click.echo(f"{pad}format {spec.format}" + (f" ({options})" if options else ""))
        layouts = " or ".join(f"{lay.annotations} + images in {lay.images or '.'}" for lay in spec.layouts)
        click.echo(f"{pad}under {default_root(spec)}: {layouts}")
        click.echo(f"{pad}present: {_present(spec)}")
        click.echo(f"{pad}get it: {_files_text(spec)}")
        sha = spec.sha256 and f"SHA-256 {spec.sha256[:12]}… ({spec.sha256_source or 'published'})"
        unpinned = (
            "no SHA-256 published: recorded by `evalsuite download`"
            if spec.files
            else "no SHA-256 published and nothing downloads them: never marked official"
        )
        click.echo(f"{pad}annotations: {sha or unpinned}")
        if spec.licence:
            click.echo(f"{pad}licence: {spec.licence}")
        mine = [p.name for p in protocols.values() if p.dataset == name]
        click.echo(f"{pad}protocols: {', '.join(mine)}")
        if spec.notes:
            click.echo(f"{pad}note: {spec.notes}")
        if spec.origin not in ("", "builtin"):
            click.echo(f"{pad}from: {spec.origin}")
    for name, why in broken_datasets().items():
        click.echo(f"  {name:<17} (failed to load: {why})")


@click.command("ls")
@click.argument("what", required=False, type=click.Choice(WHAT))
@dataset_file_option
def ls_cmd(what: str | None) -> None:
    """List protocols (with versions and options), models (weights, licence, parameters, how each is
    verified against its official code, and the official predictor's options with their defaults),
    datasets (format, layout, how to get them, licence, protocols), prompt rules, metrics and presets
    (each option with its type, bounds and help)."""
    from . import info_rules

    parts = {
        "protocols": _protocols,
        "models": _models,
        "datasets": _datasets,
        "prompts": info_rules.prompts,
        "metrics": info_rules.metrics,
        "presets": info_rules.presets,
    }
    for i, part in enumerate(w for w in WHAT if what in (None, w)):
        if i:
            click.echo("")
        parts[part]()


def register(cli: click.Group) -> None:
    cli.add_command(ls_cmd)
