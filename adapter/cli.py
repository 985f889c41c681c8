"""The `npo-adapter` command."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from adapter.config import Settings

app = typer.Typer(help="HL7 FHIR <-> RIVTA adapter for Sweden's national patient overview (NPÖ).",
                  no_args_is_help=True, add_completion=False)
demo_app = typer.Typer(help="The bundled synthetic demo data.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")
console = Console(stderr=True)

StoreOpt = typer.Option(None, "--store", help="Store URL (default: NPO_STORE_URL or sqlite:///var/npo-adapter.db)")


def _settings(store: str | None) -> Settings:
    s = Settings()
    if store:
        s.store_url = store
    return s


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., exists=True, help="FHIR R4 JSON files or folders (Bundles, "
                                       "single resources, NDJSON)"),
    store: str | None = StoreOpt,
    source_system: str | None = typer.Option(None, "--source-system",
                                             help="Source-system HSA-id for resources whose meta.source "
                                                  "names none (default NPO_SOURCE_SYSTEM_HSAID)"),
) -> None:
    """Validate, map and store FHIR journal data so the producer can serve it."""
    from adapter.ingest import count_items
    from adapter.ingest import ingest as run
    from adapter.store.engine import open_store

    settings = _settings(store)
    engine = open_store(settings.store_url)
    total = count_items(paths)
    with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("ingest", total=total)
        report = run(engine, paths, default_source_system=source_system or settings.source_system_hsaid,
                     progress=lambda n: bar.advance(task, n))

    table = Table(title="Ingest summary", show_header=False)
    table.add_row("resources read", str(report.read))
    table.add_row("supporting resources (patients, organisations, roles ...)", str(report.context))
    for contract, n in sorted(report.published.items()):
        table.add_row(f"records published: {contract}", str(n))
    table.add_row("records removed", str(report.removed))
    table.add_row("skipped (nothing for NPÖ)", str(report.skipped))
    table.add_row("rejected", str(len(report.rejected)))
    console.print(table)
    for rej in report.rejected:
        console.print(f"[red]rejected[/red] {rej.origin} {rej.resource}: {rej.reason}", markup=True,
                      highlight=False)
    if report.rejected:
        raise typer.Exit(code=2)


@app.command()
def serve(
    store: str | None = StoreOpt,
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8080, help="Port"),
    log_level: str = typer.Option("info", help="Log level"),
) -> None:
    """Serve the NPÖ service contracts from the store (plain HTTP; the mTLS gateway is separate)."""
    import uvicorn

    from adapter.producer.app import create_app
    from adapter.store.engine import open_store

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = _settings(store)
    app_ = create_app(open_store(settings.store_url), settings)
    console.print(f"serving NPÖ contracts on http://{host}:{port} (store {settings.store_url})")
    uvicorn.run(app_, host=host, port=port, log_level=log_level.lower(), access_log=False)


@demo_app.command("generate")
def demo_generate(target: Path = typer.Argument(None, help="Output folder (default demo-data/)")) -> None:
    """Write the synthetic municipal journal as FHIR Bundles."""
    from adapter.demo.generate import DEFAULT_DIR, generate

    for path in generate(target or DEFAULT_DIR):
        console.print(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    app()
