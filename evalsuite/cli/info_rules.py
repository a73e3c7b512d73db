"""``evalsuite ls prompts | metrics | presets`` and the protocol options: each declaration with its help."""

from __future__ import annotations

import click

PAD = " " * 6


def protocol_options() -> None:
    """Every protocol option a task kind declares (the prompt rules' and metrics' are listed with them)."""
    from ..protocols import TASK_OPTIONS

    click.echo("\nProtocol options (--set KEY=VALUE; the prompt rules and metrics add theirs):")
    for task, specs in TASK_OPTIONS.items():
        click.echo(f"  {task} protocols:")
        for key, spec in specs.items():
            click.echo(f"{PAD}{spec.line(key)}")
    click.echo("  every protocol: metrics (the reported metrics, e.g. metrics=mIoU,mBIoU; +mBIoU adds one)")


def prompts() -> None:
    from ..prompts.strategies import strategies

    click.echo("Prompt rules (registered under evalsuite.prompts):")
    for name, rule in strategies().items():
        select = f"prompt={rule.prompt}" + (f", {rule.selector}={rule.rule}" if rule.rule else "")
        traits = [f"model takes {' + '.join(sorted(rule.kinds))}"]
        traits += ["seeded by --seed"] * rule.seeded + [
            "answers the model's masks (iterative)"
        ] * rule.adaptive
        click.echo(f"  {name:<12} {rule.summary()}")
        click.echo(f"{PAD}selected by {select}; {'; '.join(traits)}")
        for key, spec in rule.options.items():
            click.echo(f"{PAD}option {spec.line(key)}")


def metrics() -> None:
    from ..metrics.base import metric_classes

    click.echo("Metrics (registered under evalsuite.metrics; a protocol lists the numbers it reports):")
    for name, m in metric_classes().items():
        reports = ", ".join(m.higher_is_better) if name != "NoC" else "NoC@85, NoC@90, NoF@85, NoF@90, mIoU@k"
        click.echo(f"  {name:<6} {m.summary()}")
        click.echo(f"{PAD}reports {reports}; for {', '.join(sorted(m.task_kinds))} protocols")
        for f in m.fields:
            click.echo(f"{PAD}per-item field {f.name}: {f.help}")
        for key, spec in m.options.items():
            click.echo(f"{PAD}option {spec.line(key)}")


def presets() -> None:
    from ..engine.presets import PRESETS

    click.echo("Presets (--preset NAME; evaluate(preset=...); docs/presets.md):")
    for p in PRESETS.values():
        opts = ", ".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in p.protocol_options.items()
        )
        click.echo(f"  {p.name:<17} {p.summary}")
        click.echo(f"{PAD}sets {opts}")
        if p.model_options:
            model = ", ".join(f"{k}={str(v).lower()}" for k, v in p.model_options.items())
            click.echo(f"{PAD}and the model option {model} (models that have it)")
        click.echo(f"{PAD}read from {p.source}")
        for step in p.not_reproduced:
            click.echo(f"{PAD}not reproduced: {step}")
