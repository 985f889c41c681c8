"""The `npo-adapter` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

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
    table.add_row("resources withdrawn (records removed)", str(report.removed))
    table.add_row("skipped (nothing for NPÖ)", str(report.skipped))
    table.add_row("rejected", str(len(report.rejected)))
    console.print(table)
    for rej in report.rejected:
        console.print(f"[red]rejected[/red] {rej.origin} {rej.resource}: {rej.reason}", markup=True,
                      highlight=False)
    if report.rejected:
        raise typer.Exit(code=2)


DEV_PKI = Path("certs/dev")
DEV_AUTHORISATIONS = Path("config/authorisations.dev.toml")


@app.command()
def serve(
    store: str | None = StoreOpt,
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8443, help="Port"),
    uds: Path | None = typer.Option(None, "--uds", help="Listen on this Unix socket instead of host:port"),
    tls_cert: Path | None = typer.Option(None, help="Server certificate chain (PEM) [dev PKI]"),
    tls_key: Path | None = typer.Option(None, help="Server key (PEM) [dev PKI]"),
    client_ca: Path | None = typer.Option(None, help="CAs trusted for client certificates (PEM) [dev PKI]"),
    crl: list[Path] | None = typer.Option(None, help="CRL (PEM), one for every CA in the chain; repeatable "
                                          "[dev PKI]. Reloaded on SIGHUP"),
    authorisations: Path = typer.Option(DEV_AUTHORISATIONS, "--authorisations",
                                        help="Who may call which contract for which logical address (TOML)"),
    behind_proxy: bool = typer.Option(False, "--behind-proxy", help="Serve on --uds behind nginx, which "
                                      "verifies client certificates and forwards them in X-Client-Cert"),
    plain_http: bool = typer.Option(False, "--plain-http", help="No TLS and no caller authentication "
                                    "(loopback or Unix socket only; development)"),
    log_level: str = typer.Option("info", help="Log level"),
) -> None:
    """Serve the NPÖ service contracts: mutual TLS with SITHS-style function certificates by default."""
    from adapter.gateway import authorisation, server
    from adapter.gateway.identity import CertSource
    from adapter.gateway.pki import load_pki
    from adapter.gateway.tls import TlsContexts, TlsFiles
    from adapter.producer.app import Access, create_app
    from adapter.store.engine import open_store

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if behind_proxy and uds is None:
        _fail("--behind-proxy needs --uds: the forwarded certificate is trusted only on nginx's Unix socket")
    if plain_http and uds is None and not server.is_loopback(host):
        _fail("plain HTTP is refused on anything but loopback or a Unix socket")
    try:
        rules = authorisation.load(authorisations)
    except authorisation.AuthorisationError as exc:
        _fail(str(exc))

    tls = None
    source = CertSource.NONE
    if behind_proxy:
        source = CertSource.PROXY
    elif not plain_http:
        source = CertSource.TLS
        if not (tls_cert and tls_key and client_ca and crl):
            if not (DEV_PKI / "pki.json").exists():
                _fail(f"no TLS material given and no dev PKI in {DEV_PKI}: run `npo-adapter certs init`")
            pki = load_pki(DEV_PKI)
            tls_cert, tls_key = tls_cert or pki.server_cert, tls_key or pki.server_key
            client_ca, crl = client_ca or pki.ca_bundle, crl or [pki.crl_root, pki.crl_function]
        tls = TlsContexts(TlsFiles(tls_cert, tls_key, client_ca, tuple(crl)))

    settings = _settings(store)
    app_ = create_app(open_store(settings.store_url), settings, Access(source, rules))
    config = server.uvicorn_config(app_, host=host, port=port, uds=str(uds) if uds else None, tls=tls,
                                   log_level=log_level.lower())
    where = f"unix:{uds}" if uds else f"{'https' if tls else 'http'}://{host}:{port}"
    console.print(f"serving NPÖ contracts on {where} ({source.value} callers; store {settings.store_url})")
    server.run(config, tls)


certs_app = typer.Typer(help="The development PKI (SITHS-like).", no_args_is_help=True)
app.add_typer(certs_app, name="certs")


@certs_app.command("init")
def certs_init(
    directory: Path = typer.Option(DEV_PKI, "--dir", help="Where to write the PKI (git-ignored)"),
    force: bool = typer.Option(False, "--force", help="Replace an existing PKI"),
) -> None:
    """Create a root CA, a function CA, a server certificate, client function certificates and CRLs."""
    from adapter.gateway.pki import init_pki

    pki = init_pki(directory, force=force)
    table = Table(title=f"Development PKI in {pki.dir}")
    table.add_column("client")
    table.add_column("HSA-id")
    table.add_column("certificate")
    for name, c in pki.clients.items():
        table.add_row(name, c.hsa_id or "-", str(c.cert))
    console.print(table)


@certs_app.command("nginx")
def certs_nginx(
    socket: Path = typer.Option(..., "--socket", help="The adapter's Unix socket (serve --uds ... --behind-proxy)"),
    listen: str = typer.Option("443", "--listen", help="nginx listen address/port"),
    directory: Path = typer.Option(DEV_PKI, "--dir", help="PKI whose server certificate, CAs and CRLs to use"),
    server_name: str = typer.Option("_", "--server-name"),
) -> None:
    """Print the nginx server block for the production profile, filled in with a PKI's paths."""
    from adapter.gateway.nginx import render
    from adapter.gateway.pki import load_pki

    pki = load_pki(directory)
    typer.echo(render(listen=listen, socket=socket.resolve(), server_cert=pki.server_cert.resolve(),
                      server_key=pki.server_key.resolve(), client_ca=pki.ca_bundle.resolve(),
                      crls=pki.crls.resolve(), server_name=server_name))


def _fail(message: str) -> NoReturn:
    console.print(f"[red]refused:[/red] {message}")
    raise typer.Exit(code=2)


@demo_app.command("generate")
def demo_generate(target: Path = typer.Argument(None, help="Output folder (default demo-data/)")) -> None:
    """Write the synthetic municipal journal as FHIR Bundles."""
    from adapter.demo.generate import DEFAULT_DIR, generate

    for path in generate(target or DEFAULT_DIR):
        console.print(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    app()
