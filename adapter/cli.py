"""The `npo-adapter` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from adapter.config import Settings
from adapter.console import stderr_console


def _flags_show_no_value() -> None:
    """typer's rich help prints a value type after every option, so a flag read `--quick <bool>`, and then
    `--quick true` was refused. A flag takes no value: show none (every command, --help included)."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "flags_show_no_value", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.flags_show_no_value = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_value()
app = typer.Typer(help="HL7 FHIR <-> RIVTA adapter for Sweden's national patient overview (NPÖ).",
                  no_args_is_help=True, add_completion=False)
demo_app = typer.Typer(help="The bundled synthetic demo data.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")
console = stderr_console()

StoreOpt = typer.Option(None, "--store", help="Store URL (default: NPO_STORE_URL or sqlite:///var/npo-adapter.db)")
LogFormatOpt = typer.Option(None, "--log-format", envvar="NPO_LOG_FORMAT",
                            help="text, or json: one JSON object per line (time, level, logger, event, log_id, "
                                 "contract, consumer, correlation_id) [default: text]")
MetricsPortOpt = typer.Option(None, "--metrics-port", help="Serve /metrics (Prometheus) and /health/live, "
                              "/health/ready on this port, plain HTTP, without client certificates [off]")
MetricsHostOpt = typer.Option("127.0.0.1", "--metrics-host", help="Address of the metrics listener (it shows no "
                              "personal data; keep it on the operations network)")


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
    metrics_file: Path | None = typer.Option(None, "--metrics-file", envvar="NPO_INGEST_METRICS_FILE",
                                             help="Write the run's counters here in Prometheus text format "
                                                  "(node_exporter's textfile collector)"),
) -> None:
    """Validate, map and store FHIR journal data so the producer can serve it."""
    from adapter.ingest import count_items
    from adapter.ingest import ingest as run

    settings = _settings(store)
    engine = _open(store)
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
    table.add_row("unchanged (sent again as stored)", str(report.unchanged))
    table.add_row("rejected", str(len(report.rejected)))
    console.print(table)
    for rej in report.rejected:
        console.print(f"[red]rejected[/red] {rej.origin} {rej.resource}: {rej.reason}", markup=True,
                      highlight=False)
    if metrics_file is not None:
        from adapter.metrics import write_textfile

        try:
            write_textfile(metrics_file)
        except OSError as exc:
            _fail(f"--metrics-file {metrics_file}: {exc.strerror or exc}")
    if report.rejected:
        raise typer.Exit(code=2)


DEV_PKI = Path("certs/dev")
DEV_AUTHORISATIONS = Path("config/authorisations.dev.toml")


@app.command()
def serve(
    store: str | None = StoreOpt,
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8443, help="Port"),
    uds: Path | None = typer.Option(None, "--uds", help="Listen on this Unix socket instead of host:port "
                                    "(created 0600, or 0660 with --socket-group)"),
    socket_group: str | None = typer.Option(None, "--socket-group", help="Group that may connect to the --uds "
                                            "socket besides its owner (nginx's group)"),
    tls_cert: Path | None = typer.Option(None, help="Server certificate chain (PEM) [dev PKI]"),
    tls_key: Path | None = typer.Option(None, help="Server key (PEM) [dev PKI]"),
    client_ca: Path | None = typer.Option(None, help="CAs trusted for client certificates (PEM) [dev PKI]"),
    crl: list[Path] | None = typer.Option(None, help="CRL (PEM), one for every CA in the chain; repeatable "
                                          "[dev PKI]. Reloaded on SIGHUP"),
    authorisations: Path | None = typer.Option(None, "--authorisations", help="Who may call which contract "
                                               f"for which logical address (TOML) [{DEV_AUTHORISATIONS}]"),
    behind_proxy: bool = typer.Option(False, "--behind-proxy", help="Serve on --uds behind nginx, which "
                                      "verifies client certificates and forwards them in X-Client-Cert; "
                                      "the adapter verifies them again with --client-ca and --crl"),
    plain_http: bool = typer.Option(False, "--plain-http", help="No TLS and no caller authentication "
                                    "(loopback or Unix socket only; development)"),
    log_level: str = typer.Option("info", help="Log level"),
    log_format: str | None = LogFormatOpt,
    metrics_port: int | None = MetricsPortOpt,
    metrics_host: str = MetricsHostOpt,
    workers: int | None = typer.Option(None, "--workers", envvar="NPO_SERVE_WORKERS", help="Worker processes "
                                       "answering on the one socket, under a supervisor that restarts a worker "
                                       "that dies and forwards SIGHUP to all [the cores this process may use]"),
) -> None:
    """Serve the NPÖ service contracts: mutual TLS with SITHS-style function certificates by default.

    Given none of --tls-cert, --tls-key, --client-ca, --crl and --authorisations, the development PKI
    (certs/dev) and authorisations are used, and said so; given any of them, every one the mode needs
    must be given."""
    from adapter import logs, ops
    from adapter.gateway import authorisation, server
    from adapter.gateway.identity import CertSource
    from adapter.gateway.pki import load_pki
    from adapter.gateway.tls import TlsFiles
    from adapter.gateway.workers import ProducerSpec, default_workers

    _logging(log_level, log_format)
    workers = default_workers() if workers is None else workers
    if workers < 1:
        _fail("--workers: at least 1")
    if behind_proxy and plain_http:
        _fail("--behind-proxy and --plain-http exclude each other")
    if behind_proxy and uds is None:
        _fail("--behind-proxy needs --uds: the forwarded certificate is trusted only on nginx's Unix socket")
    if plain_http and uds is None and not server.is_loopback(host):
        _fail("plain HTTP is refused on anything but loopback or a Unix socket")
    if socket_group is not None and uds is None:
        _fail("--socket-group goes with --uds")

    source = CertSource.PROXY if behind_proxy else CertSource.NONE if plain_http else CertSource.TLS
    given = {"--tls-cert": tls_cert, "--tls-key": tls_key, "--client-ca": client_ca, "--crl": crl,
             "--authorisations": authorisations}
    needed = {CertSource.TLS: list(given), CertSource.PROXY: ["--client-ca", "--crl", "--authorisations"],
              CertSource.NONE: []}[source]
    if any(given.values()):
        missing = [name for name in needed if not given[name]]
        if missing:
            _fail(f"{', '.join(missing)} must be given too: with your own certificates nothing is taken from the "
                  f"development PKI ({DEV_PKI}) or {DEV_AUTHORISATIONS}")
    elif needed:
        if not (DEV_PKI / "pki.json").exists():
            _fail(f"no TLS material given and no dev PKI in {DEV_PKI}: give {', '.join(needed)} "
                  "(or run `npo-adapter certs init` for development)")
        pki = load_pki(DEV_PKI)
        tls_cert, tls_key, client_ca, crl = pki.server_cert, pki.server_key, pki.ca_bundle, [pki.crl_root,
                                                                                               pki.crl_function]
        _say(f"[bold red]DEVELOPMENT:[/bold red] trusting the development PKI in {DEV_PKI} and "
             f"{DEV_AUTHORISATIONS}; never use these outside development", logging.WARNING)
    try:
        authorisation.load(authorisations or DEV_AUTHORISATIONS)
    except authorisation.AuthorisationError as exc:
        _fail(str(exc))

    settings = _settings(store)
    if workers > 1 and not settings.paging_key:
        from adapter.producer.paging import new_key

        settings.paging_key = new_key()  # one key for all workers: a hasMore reference is good with each
    files = None
    if source is CertSource.TLS:
        files = TlsFiles(tls_cert, tls_key, client_ca, tuple(crl))
    elif source is CertSource.PROXY:
        files = TlsFiles(Path(), Path(), client_ca, tuple(crl))
    spec = ProducerSpec(settings, source, authorisations or DEV_AUTHORISATIONS, files, log_level,
                        logs.log_format(log_format))
    try:
        gateway = spec.gateway()
    except (OSError, ValueError) as exc:
        _fail(f"TLS material: {exc}")
    if settings.ei_url:
        _check_ei_files(settings)
    engine = _open(store)
    probe, readiness, certificates = ops.producer_health(engine, settings, gateway.tls, gateway.verifier)
    if uds is not None:
        try:
            sock = server.bind_unix_socket(uds, socket_group)
        except (OSError, ValueError) as exc:
            _fail(f"--uds {uds}: {exc}")
    else:
        sock = _bind(host, port)
    where = f"unix:{uds}" if uds else f"{'https' if gateway.tls else 'http'}://{host}:{port}"
    if workers == 1:
        app_ = spec.app(engine, gateway)
        config = server.uvicorn_config(app_, host=host, port=port, uds=str(uds) if uds else None, tls=gateway.tls,
                                       log_level=log_level.lower())
        _start_metrics(metrics_host, metrics_port, readiness, probe, certificates)
        _say(f"serving NPÖ contracts on {where} ({source.callers})")
        _ei_sender(engine, settings)
        server.run(config, gateway.reload, sock)
        return
    _supervise(spec, workers, sock, gateway, where, (metrics_host, metrics_port, readiness, probe, certificates),
               engine)


def _supervise(spec, workers: int, sock, gateway, where: str, metrics_args: tuple, engine) -> None:
    """`serve --workers N` (N > 1): the supervisor keeps the metrics listener and the engagement-index sender;
    exit 1 when a worker could not start or workers kept dying (the log says why)."""
    from adapter.gateway.workers import metrics_folder, supervise
    from adapter.metrics import workers_metrics

    with metrics_folder() as folder:
        _start_metrics(*metrics_args, recorded=workers_metrics(folder))
        _say(f"serving NPÖ contracts on {where} ({spec.source.callers}) with {workers} worker processes")
        _ei_sender(engine, spec.settings)
        if not supervise(spec, workers, sock, gateway.reload):
            _say("[red]stopped:[/red] a worker could not start, or workers kept dying (see the reason above)",
                 logging.ERROR)
            raise typer.Exit(code=1)


def _ei_sender(engine, settings: Settings) -> None:
    if settings.ei_url:
        _start_ei_sender(engine, settings)
    else:
        _say("engagement index updates: not configured (NPO_EI_URL); changes wait in the outbox")


def _start_metrics(host: str, port: int | None, readiness, probe, certificates, recorded=None) -> None:
    """The metrics listener (adapter/ops.py), when a port is given; `recorded`: the workers' metrics."""
    if port is None:
        return
    from adapter import metrics, ops
    from adapter.gateway.server import is_loopback

    try:
        listener = ops.start(host, port, readiness, metrics.StateCollector(probe, certificates),
                             recorded=recorded or metrics.REGISTRY)
    except OSError as exc:
        _fail(f"--metrics-port {port}: {exc}")
    note = "" if is_loopback(host) else " (not loopback: keep it on the operations network)"
    _say(f"metrics and health on {listener.url}/metrics, /health/live, /health/ready{note}")


def _bind(host: str, port: int):
    """The listening socket, bound before the command says it serves (exit 2 naming the port when it is taken)."""
    from adapter.gateway import server

    try:
        return server.bind_tcp(host, port)
    except server.PortInUse as exc:
        _fail(f"{exc.strerror}: stop it, or choose another port with --port (`make run PORT=8444` for the demo)")
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def _check_ei_files(settings: Settings) -> None:
    """The engagement index's certificate, key and CA are files, or exit 2 naming the variable and the path
    (only for an https index: over plain http, in development and tests, they are not used)."""
    if not (settings.ei_url or "").startswith("https:"):
        return
    for variable, value in (("NPO_EI_CERT", settings.ei_cert), ("NPO_EI_KEY", settings.ei_key),
                            ("NPO_EI_CA", settings.ei_ca)):
        if not Path(value).is_file():
            _fail(f"{variable}: no such file {value}" + (" (dev: `npo-adapter certs init`)"
                                                           if value.startswith(str(DEV_PKI)) else ""))


def _start_ei_sender(engine, settings: Settings) -> None:
    """The engagement-index sender runs beside the server, in its own thread and event loop."""
    import asyncio
    import threading

    from adapter.ei.run import sender_for

    async def loop() -> None:
        async with sender_for(engine, settings) as sender:
            await sender.run(asyncio.Event())

    threading.Thread(target=asyncio.run, args=(loop(),), name="ei-sender", daemon=True).start()
    _say(f"engagement index updates: sending to {settings.ei_url}")


@app.command("ei-sync")
def ei_sync(store: str | None = StoreOpt,
            max_calls: int | None = typer.Option(None, help="Stop after this many Update calls")) -> None:
    """Send pending engagement-index changes now (one-off), then show what is left.

    Exit status: 0 all delivered; 1 something was not delivered (the index unreachable or a fault: retried on
    the next run); 3 the index refused engagements on their own and they were set aside (listed, with the
    reason; fix the cause, then `ei-status --requeue`); 2 refused to run."""
    import asyncio

    from adapter.ei.run import sender_for

    _logging("info")
    settings = _settings(store)
    if not settings.ei_url:
        _fail("no engagement index configured: set NPO_EI_URL (and NPO_EI_LOGICAL_ADDRESS)")
    _check_ei_files(settings)
    engine = _open(store)

    async def run():
        async with sender_for(engine, settings) as sender:
            return await sender.drain(max_calls)

    report = asyncio.run(run())
    console.print(f"Update calls: {report.calls}, engagements sent: {report.sent}, set aside: {report.failed}, "
                  f"not delivered: {len(report.errors)}, sent rows purged: {report.purged}", highlight=False)
    for a in report.set_aside:
        console.print(f"[red]set aside[/red] {a.key}: {a.categorization} at {a.logical_address} for "
                      f"{a.data_controller}{' (deleteFlag)' if a.delete_flag else ''}: {escape(a.reason)}",
                      highlight=False)
    for error in dict.fromkeys(report.errors):
        console.print(f"[yellow]not delivered[/yellow] (retried later): {escape(error)}", highlight=False)
    _print_ei_status(engine)
    if report.set_aside:
        console.print("fix the cause, then put them back: npo-adapter ei-status --requeue KEY (or --all-failed)",
                      highlight=False)
        raise typer.Exit(code=3)
    if report.errors:
        raise typer.Exit(code=1)


@app.command("ei-status")
def ei_status(
    keys: list[int] = typer.Argument(None, metavar="[KEY]...", help="Set-aside engagements to requeue (as listed)"),
    store: str | None = StoreOpt,
    requeue: bool = typer.Option(False, "--requeue", help="Put the set-aside engagements KEY... back in the queue"),
    all_failed: bool = typer.Option(False, "--all-failed", help="With --requeue: every set-aside engagement"),
    show_resident: bool = typer.Option(False, "--show-resident",
                                       help="Show the patient's personnummer of each set-aside engagement"),
    limit: int = typer.Option(20, help="List at most this many set-aside engagements, newest first"),
) -> None:
    """What the engagement-index outbox holds: pending, sent, set aside (with the reasons); --requeue puts
    set-aside engagements back once the cause is fixed. The personnummer is shown only with --show-resident."""
    if keys and not requeue:
        _fail("KEY is for --requeue: npo-adapter ei-status --requeue KEY...")
    if all_failed and not requeue:
        _fail("--all-failed is for --requeue: npo-adapter ei-status --requeue --all-failed")
    if requeue and bool(keys) == all_failed:
        _fail("--requeue takes the KEYs of set-aside engagements (as ei-status lists them) or --all-failed")
    engine = _open(store)
    if requeue:
        from adapter.ei.outbox import requeue as put_back
        from adapter.store.locks import write_transaction

        with write_transaction(engine) as conn:
            done = put_back(conn, None if all_failed else keys)
        console.print(f"requeued: {len(done.requeued)} ({' '.join(map(str, done.requeued)) or '-'}); "
                      f"older states of the same engagements dropped: {len(done.superseded)}", highlight=False)
        if done.unknown:
            console.print(f"[red]not set aside[/red] (no such KEY in ei-status): {' '.join(map(str, done.unknown))}",
                          highlight=False)
    _print_ei_status(engine, show_resident=show_resident, limit=limit)
    if requeue and done.unknown:
        raise typer.Exit(code=1)


def _print_ei_status(engine, *, show_resident: bool = False, limit: int = 20) -> None:
    from adapter.ei.run import status

    st = status(engine, limit)
    table = Table(title="Engagement index outbox", show_header=False)
    for key in ("pending", "retrying", "sent"):
        table.add_row(key, str(st[key]))
    table.add_row("set aside (failed)", str(st["failed"]))
    table.add_row("oldest pending since", str(st["oldest_pending"] or "-"))
    console.print(table)
    if not st["recent_failures"]:
        return
    failed = Table(title="Set aside for an operator (newest first)")
    for column in ("KEY", *(("personnummer",) if show_resident else ()), "kind", "source system",
                   "care giver", "delete", "since", "reason"):
        failed.add_column(column, overflow="fold")
    for f in st["recent_failures"]:
        failed.add_row(str(f["key"]), *((f["resident"],) if show_resident else ()), f["categorization"],
                       f["logical_address"], f["data_controller"], "yes" if f["delete_flag"] else "",
                       f["updated_at"].strftime("%Y-%m-%d %H:%M") if f["updated_at"] else "-",
                       escape(f["last_error"] or ""))
    console.print(failed)
    if st["failed"] > len(st["recent_failures"]):
        console.print(f"... and {st['failed'] - len(st['recent_failures'])} more (--limit)", highlight=False)
    if not show_resident:
        console.print("personnummer hidden (--show-resident shows them). Requeue after fixing the cause: "
                      "npo-adapter ei-status --requeue KEY... (or --all-failed)", highlight=False)


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


@app.command()
def stubs(
    seed: Path | None = typer.Option(None, "--seed", exists=True, dir_okay=False,
                                     help="Consents and blocks to start from (TOML) [adapter/stubs/seed.dev.toml]"),
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    consent_port: int = typer.Option(8601, help="Port of the consent service stand-in"),
    blocking_port: int = typer.Option(8602, help="Port of the block service stand-in"),
    log_port: int = typer.Option(8603, help="Port of the log service stand-in"),
    ei_port: int = typer.Option(8604, help="Port of the engagement index stand-in"),
    pki_dir: Path = typer.Option(DEV_PKI, "--pki", help="Dev PKI for mutual TLS (npo-adapter certs init)"),
    plain_http: bool = typer.Option(False, "--plain-http", help="No TLS (loopback only; development)"),
    log_level: str = typer.Option("info", help="Log level"),
    log_format: str | None = LogFormatOpt,
) -> None:
    """Serve local stand-ins of the national consent, block, log and engagement-index services (development,
    demos and tests only)."""
    from adapter.gateway import server
    from adapter.stubs.run import DEV_SEED, serve_stubs, tls_from_dev_pki
    from adapter.stubs.seed import SeedError, load_seed

    _logging(log_level, log_format)
    if plain_http and not server.is_loopback(host):
        _fail("plain HTTP is refused on anything but loopback")
    seed = seed or DEV_SEED
    try:
        load_seed(seed)
    except SeedError as exc:
        _fail(str(exc))
    tls = None
    if not plain_http:
        if not (pki_dir / "pki.json").exists():
            _fail(f"no dev PKI in {pki_dir}: run `npo-adapter certs init` (or use --plain-http on loopback)")
        tls = tls_from_dev_pki(pki_dir)
    serve_stubs(seed, host, {"consent": consent_port, "blocking": blocking_port, "log": log_port, "ei": ei_port},
                tls)


DEV_CONSUMER = Path("config/consumer.dev.toml")
ConsumerOpt = typer.Option(DEV_CONSUMER, "--config", help="The consumer's sources, national services and "
                           "certificate (TOML)")


@app.command()
def overview(
    patient: str = typer.Argument(..., help="Personnummer or samordningsnummer, 12 digits"),
    employee: str = typer.Option(..., "--as", help="Your HSA-id"),
    unit: str = typer.Option(..., "--unit", help="The care unit of your assignment (HSA-id)"),
    consent_given: bool = typer.Option(False, "--consent", help="Register the patient's consent for your unit"),
    emergency: str | None = typer.Option(None, "--emergency", help="Emergency access, with the reason"),
    as_json: bool = typer.Option(False, "--json", help="Print the FHIR Bundle"),
    full: bool = typer.Option(False, "--full", help="Print every record whole: its text, attachments, author"),
    record: str | None = typer.Option(None, "--record", metavar="DOCUMENT-ID",
                                      help="Only this record, whole (only it is shown and logged)"),
    config_path: Path = ConsumerOpt,
    store: str | None = StoreOpt,
) -> None:
    """A patient's overview from every source, with PDL applied and the access logged. Each source is reported as
    it answers; the tables follow when every source answered or the deadline passed."""
    import asyncio

    from adapter.consumer.overview import (
        AccessOrigin,
        overview_stream,
        patient_type_of,
        register_unit_consent,
    )
    from adapter.consumer.pdl.decide import UserContext
    from adapter.consumer.pdl.soap_call import PdlServiceError, ServiceRefused
    from adapter.consumer.staff_settings import reason_problem
    from adapter.consumer.view import to_bundle

    if not (len(patient) == 12 and patient.isdigit()):
        _fail("the patient id must be 12 digits without separator")
    if consent_given and emergency is not None:
        _fail("choose --consent or --emergency, not both")
    config = _consumer_config(config_path)
    if emergency is not None and (problem := reason_problem(emergency, config.emergency)):
        _fail(f"--emergency: {problem}")
    try:
        assignment = config.assignment(unit)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    user = UserContext(employee, assignment.care_unit, assignment.care_giver, purpose=assignment.purpose)
    engine = _open(store)
    ptype = patient_type_of(patient)
    if consent_given:
        try:
            asyncio.run(register_unit_consent(config, user, patient, ptype))
        except ServiceRefused as exc:
            _fail(f"the consent service did not register the consent ({exc.reason})")
        except PdlServiceError as exc:
            _fail(f"the consent service could not be reached ({exc.reason}); nothing was registered or shown")
    origin = AccessOrigin("cli", None, "local", assignment.name)

    async def as_it_comes():
        told: set = set()
        last = None
        async for ov in overview_stream(config, engine, user, patient, ptype, emergency_reason=emergency,
                                        origin=origin, only_document=record):
            _print_progress(ov, told)
            last = ov
        return last

    ov = asyncio.run(as_it_comes())
    if as_json:
        typer.echo(to_bundle(ov).model_dump_json(indent=2))
        _exit_if_no_source_answered(ov)
        return
    if record is not None:
        found = [r for recs in ov.records.values() for r in recs]
        for notice in ov.notices:
            console.print(f"[yellow]![/yellow] {escape(notice)}", highlight=False)
        if not found:
            console.print(f"no record with document id {escape(record)} is shown in this overview", highlight=False)
            raise typer.Exit(code=1)
        from adapter.consumer.summary import summarise
        for r in found:
            _print_record(r.contract.label, summarise(r, config.names))
        return
    _print_overview(ov, assignment.name, config.names, full=full)
    _exit_if_no_source_answered(ov)


def _exit_if_no_source_answered(ov) -> None:
    """Exit 1 when every source failed every information type: an empty overview is then no answer, and a script
    must not take it for a patient with nothing recorded."""
    from adapter.consumer.fetch import Outcome

    if ov.sources and all(r.outcome is Outcome.FAILED for r in ov.sources):
        console.print("[red]Ingen källa svarade:[/red] översikten är tom för att inget kunde hämtas, inte för att "
                      "patienten saknar uppgifter", highlight=False)
        raise typer.Exit(code=1)


def _print_progress(ov, told: set) -> None:
    """A line per source as it answers (and, first, which are asked): a hung producer holds only itself."""
    from adapter.consumer.fetch import Outcome

    if not told and ov.pending and not ov.complete:
        count = f"{len(ov.pending)} {'källa' if len(ov.pending) == 1 else 'källor'}"
        console.print(f"Hämtar från {count}: {escape(', '.join(s.name for s in ov.pending))}", highlight=False)
    for source in dict.fromkeys(r.source for r in ov.sources):
        if source in told:
            continue
        told.add(source)
        results = [r for r in ov.sources if r.source == source]
        failed = [r for r in results if r.outcome is Outcome.FAILED]
        shown = sum(n for (s, _), n in ov.shown_from.items() if s == source)
        mark = "[red]✗[/red]" if failed else "[green]✓[/green]"
        said = f"{shown} uppgifter visas" if shown else "inget att visa"
        if failed:
            # where it was asked and the first reason: "could not connect" alone does not say which address
            said += (f"; misslyckades för {len(failed)} av {len(results)} informationsmängder "
                     f"({source.url}: {failed[0].reason})")
        console.print(f"{mark} {escape(source.name)} ({source.logical_address}): {escape(said)}", highlight=False)


def _consumer_config(path: Path):
    """The consumer's configuration with its certificate files present, or exit 2 naming the file and key."""
    from adapter.consumer.overview import ConsumerConfigError, load_config

    try:
        return load_config(path, check_files=True)
    except ConsumerConfigError as exc:
        _fail(str(exc))


def _print_overview(ov, assignment_name: str, names=None, *, full: bool = False) -> None:
    from rich.text import Text

    from adapter.consumer.summary import empty_text, newest_first, source_rows, tab_notices
    from adapter.rivta.contracts import INFORMATION_TYPES

    console.print(f"[bold]Patientöversikt[/bold] {ov.patient_id} - {escape(assignment_name)}"
                  + (" - [red]NÖDÅTKOMST[/red]" if ov.emergency else ""))
    for notice in ov.notices:
        console.print(f"[yellow]![/yellow] {escape(notice)}", highlight=False)
    for contract in INFORMATION_TYPES:
        # clinical text is text, never markup: every cell is a Text, so "[red]" in a note stays "[red]"
        table = Table(title=f"{contract.label} ({len(ov.records[contract.key])})", title_justify="left")
        for col in ("Datum", "Uppgift", "Vem", "Vårdenhet", "Källa", "Åtkomst"):
            table.add_column(col)
        lines = newest_first(ov.records[contract.key], names)
        for s in lines:
            table.add_row(Text(" ".join(p for p in (s["date"], s["time"]) if p) or "-"), Text(s["text"]),
                          Text(", ".join(p for p in (s["author"], s["profession"]) if p)),
                          _named(s["unit"], s["care_unit"]), _named(s["source_name"], s["source"]), Text(s["basis"]))
        if not lines:
            table.add_row("-", Text(empty_text(ov, contract, names)), "", "", "", "")
        console.print(table)
        for _kind, text in tab_notices(ov, contract, names):
            console.print(Text("  ! " + text), highlight=False)
        if full:
            for s in lines:
                _print_record(contract.label, s)
    status = Table(title="Källor och status", title_justify="left")
    for col in ("Källa", "Informationsmängd", "Status", "Orsak"):
        status.add_column(col)
    for row in source_rows(ov):
        colour = {"failed": "red", "pending": "yellow"}.get(row["status"], "green" if row["shown"] else "white")
        status.add_row(_named(row["source"], row["address"]), Text(row["information_type"]),
                       Text(row["text"], style=colour), Text(row["reason"]))
    console.print(status)


def _named(name: str, hsa_id: str):
    """A name with its HSA-id below it, or the HSA-id alone."""
    from rich.text import Text

    if not name or name == hsa_id:
        return Text(hsa_id)
    return Text.assemble(name, "\n", (hsa_id, "dim"))


def _print_record(label: str, s: dict) -> None:
    """One record whole: the text as written (line breaks kept), attachments, who, where, from which source."""
    from rich.text import Text

    when = " ".join(p for p in (s["date"], s["time"]) if p)
    console.print(Text.assemble(("── " + label, "bold"), f" {when} ", (f"dokument-id {s['document_id']}", "dim")))
    console.print(Text(s["full_text"] or s["text"]), highlight=False)
    for n, a in enumerate(s["attachments"], 1):
        what = {"image": "bild", "file": "fil", "text": "text", "link": "länk", "reference": "referens (inte https)",
                "unreadable": "oläslig bilaga"}[a["kind"]]
        size = f", {len(a['data']) * 3 // 4 // 1024 or 1} kB" if a["data"] else ""
        console.print(Text(f"  Bilaga {n}: {what} ({a['media_type']}{size})"
                           + (f" {a['url']}" if a["url"] else "")), highlight=False)
        if a["text"]:
            console.print(Text(a["text"]), highlight=False)
    who = ", ".join(p for p in (s["author"], s["profession"], s["author_time"]) if p)
    if who:
        console.print(Text(f"  Dokumenterad av: {who}"), highlight=False)
    giver = f"{s['care_giver_name']} ({s['care_giver']})" if s["care_giver_name"] else s["care_giver"]
    source = f"{s['source_name']} ({s['source']})" if s["source_name"] else s["source"]
    console.print(Text(f"  Vårdenhet: {s['unit']} ({s['care_unit']}); vårdgivare: {giver}; källa: {source}; "
                       f"åtkomst: {s['basis']}"), highlight=False)


@app.command()
def ui(
    config_path: Path = ConsumerOpt,
    store: str | None = StoreOpt,
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8700, help="Port"),
    tls_cert: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                         help="Server certificate chain (PEM): HTTPS, required off loopback"),
    tls_key: Path | None = typer.Option(None, exists=True, dir_okay=False, help="Server key (PEM)"),
    log_flush_interval: float = typer.Option(30.0, min=1.0, help="Seconds between sending queued access-log "
                                             "entries to the national log service"),
    log_level: str = typer.Option("info", help="Log level"),
    log_format: str | None = LogFormatOpt,
    metrics_port: int | None = MetricsPortOpt,
    metrics_host: str = MetricsHostOpt,
) -> None:
    """The staff web page and its REST API: patient overviews with PDL applied, every access logged. Staff sign in
    through the hospital's OpenID provider ([staff_login]) over HTTPS; without one, only a labelled demo mode on
    loopback ([demo_user])."""
    from adapter.ui import create_ui_app
    from adapter.ui.serve import listen_refusal, run_ui

    _logging(log_level, log_format)
    if not config_path.is_file():
        _fail(f"no consumer configuration at {config_path}")
    config = _consumer_config(config_path)
    refusal = listen_refusal(host, tls_cert, tls_key, provider=config.staff_login is not None,
                             demo=config.demo_user is not None)
    if refusal:
        _fail(refusal)
    if config.staff_login is None and not config.assignments:
        _fail(f"{config_path} names no [[assignment]] for the demo user: nothing to choose")
    if config.staff_login is not None and not config.staff_login.client_secret:
        _fail("[staff_login] has no client secret (client_secret_file, or the variable named by client_secret_env)")
    from adapter import ops

    engine = _open(store)
    probe, readiness, certificates = ops.consumer_health(engine, config, tls_cert)
    app_ = create_ui_app(config, engine, log_flush_interval=log_flush_interval, readiness=readiness)
    sock = _bind(host, port)
    _start_metrics(metrics_host, metrics_port, readiness, probe, certificates)
    mode = (f"sign-in through {config.staff_login.issuer}" if config.staff_login
            else "DEMO MODE without sign-in, loopback only")
    _say(f"staff page on {'https' if tls_cert else 'http'}://{host}:{port}/ ({mode}; access logs to "
         f"{config.services.log_url} every {log_flush_interval:g} s)")
    run_ui(app_, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, log_level=log_level.lower(), sock=sock)


audit_app = typer.Typer(help="The PDL access log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(store: str | None = StoreOpt) -> None:
    """Check the access log's hash chain: an altered, inserted or deleted entry is reported (exit 1)."""
    from adapter.consumer.pdl.access_log import verify

    result = verify(_open(store))
    for problem in result.problems:
        console.print(f"[red]{problem}[/red]")
    console.print(f"{result.entries} entries; " + ("the chain is intact" if result.ok else "the chain is BROKEN"))
    if not result.ok:
        raise typer.Exit(code=1)


@audit_app.command("send")
def audit_send(store: str | None = StoreOpt, config_path: Path = ConsumerOpt) -> None:
    """Send queued access-log entries to the national log service (StoreLog) now."""
    import asyncio

    from adapter.consumer.pdl.log_queue import flush
    from adapter.consumer.pdl.services import STORE_LOG
    from adapter.rivta import client as rivta

    config = _consumer_config(config_path)
    engine = _open(store)

    async def run():
        ctx = config.tls_context()
        async with rivta.new_client(ctx, timeout=config.service_timeout) as client:
            return await flush(engine, client, config.services.url(STORE_LOG))

    report = asyncio.run(run())
    console.print(f"sent {report.sent}, not yet sent {report.pending}")
    if report.failed:
        raise typer.Exit(code=1)


def store_label(url: str) -> str:
    """The store as people should see it: a PostgreSQL URL without its password, a SQLite file with its full path
    (a relative one depends on the folder the command ran in)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(an unreadable store URL)"
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        shown += f" ({Path(parsed.database).resolve()})"
    return shown


def _name_store(settings: Settings) -> None:
    _say(f"store: {escape(store_label(settings.store_url))}")


def _open(store: str | None):
    from adapter.store.engine import open_store
    from adapter.store.migrate import SchemaOutOfDate

    settings = _settings(store)
    _name_store(settings)
    try:
        return open_store(settings.store_url, upgrade=settings.auto_migrate)
    except SchemaOutOfDate as exc:
        _fail(str(exc))


db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(store: str | None = StoreOpt) -> None:
    """Apply the schema migrations (Alembic) up to this version's head."""
    from adapter.store import migrate
    from adapter.store.engine import open_store

    settings = _settings(store)
    _name_store(settings)
    engine = open_store(settings.store_url, upgrade=True)
    console.print(f"schema at {migrate.current(engine)} (head {migrate.head()})")


@db_app.command("current")
def db_current(store: str | None = StoreOpt) -> None:
    """Show the store's schema revision and whether it is up to date."""
    from adapter.store import migrate
    from adapter.store.engine import create_store_engine

    settings = _settings(store)
    _name_store(settings)
    engine = create_store_engine(settings.store_url)
    have, want = migrate.current(engine), migrate.head()
    console.print(f"schema at {have or 'nothing'}; this version needs {want}"
                  + ("" if have == want else " - run `npo-adapter db upgrade`"))
    if have != want:
        raise typer.Exit(code=1)


def _register_contract_test() -> None:
    from adapter.suite.cli import contract_test

    app.command("contract-test", help=contract_test.__doc__)(contract_test)


_register_contract_test()


def _logging(level: str, fmt: str | None = None) -> None:
    """The one logging set-up; the format is `fmt` (--log-format), else NPO_LOG_FORMAT, else text."""
    from adapter import logs

    global _json_logs
    try:
        fmt = logs.log_format(fmt)
    except ValueError as exc:
        _fail(f"--log-format: {exc}")
    try:
        logs.setup(level, fmt)
    except ValueError as exc:
        _fail(f"--log-level: {exc}")
    _json_logs = fmt == "json"


def _fail(message: str) -> NoReturn:
    _say(f"[red]refused:[/red] {escape(message)}", logging.ERROR)
    raise typer.Exit(code=2)


_json_logs = False  # set by _logging: the operator's messages of a serving command become log events


def _say(message: str, level: int = logging.INFO) -> None:
    """A message to the operator (rich markup): on the console, or with --log-format json as one more JSON log
    line, so that standard error stays one JSON object a line."""
    if _json_logs:
        from rich.text import Text

        logging.getLogger("adapter.cli").log(level, "%s", Text.from_markup(message).plain)
    else:
        console.print(message, highlight=False)


@demo_app.command("generate")
def demo_generate(target: Path = typer.Argument(None, help="Output folder (default demo-data/)")) -> None:
    """Write the synthetic municipal journal as FHIR Bundles."""
    from adapter.demo.generate import DEFAULT_DIR, generate

    for path in generate(target or DEFAULT_DIR):
        console.print(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    app()
