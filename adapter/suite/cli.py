"""The `npo-adapter contract-test` command (registered in adapter/cli.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import typer
from rich.markup import escape

from adapter.console import stderr_console
from adapter.suite import declaration, report_console, report_html, report_junit, runner

EXIT_FAILED = 1  # a case failed
EXIT_UNUSABLE = 2  # the command line or the declaration cannot be used


def tls_context(cert: Path | None, key: Path | None, ca: Path | None) -> ssl.SSLContext:
    """Trust `ca` (else the system's CAs) for the producer; present `cert`/`key` as the function certificate."""
    if key is not None and cert is None:
        raise ValueError("--key needs --cert")
    if cert is not None and key is not None and ca is not None:
        from adapter.rivta.client import client_context

        return client_context(str(cert), str(key), str(ca))
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


def offered(cert: Path | None) -> str:
    """Which client certificate the run offered, and what is wrong with it that can be seen here."""
    if cert is None:
        return "No client certificate was offered: a producer behind the platform's mTLS requires one (--cert, --key)."
    from datetime import UTC, datetime

    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        c = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError):
        return f"Offered {cert} (not readable as a PEM certificate)."
    notes = []
    now = datetime.now(UTC)
    if c.not_valid_after_utc < now:
        notes.append(f"it expired on {c.not_valid_after_utc:%Y-%m-%d}")
    elif c.not_valid_before_utc > now:
        notes.append(f"it is valid only from {c.not_valid_before_utc:%Y-%m-%d}")
    try:
        if ExtendedKeyUsageOID.CLIENT_AUTH not in c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value:
            notes.append("it is not for client authentication (extended key usage)")
    except x509.ExtensionNotFound:
        pass
    found = "; " + "; ".join(notes) if notes else "; if the server did not say why: revoked, or from a CA it does " \
                                                    "not trust? Its log says which"
    from adapter.gateway.pki import hsa_id_from_certificate

    hsa_id = hsa_id_from_certificate(c)
    issuer = c.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return (f"Offered {cert} (HSA-id {hsa_id or 'none'}, issued by "
            f"{issuer[0].value if issuer else 'an unnamed CA'!s}){found}.")


def contract_test(
    contract: str = typer.Option("all", "--contract", help="Contracts by name (GetDiagnosis), or name and major "
                                 "version where several are served (GetCareDocumentation:3), comma-separated; or "
                                 "all: every contract the declaration covers"),
    endpoint: str | None = typer.Option(None, "--endpoint", help="The producer: a base URL (the contract's "
                                        "standard path is added) or a service address ending in /rivtabp21. "
                                        "Default: url / webServiceUrl of the declaration"),
    data: list[Path] = typer.Option(..., "--data", exists=True, dir_okay=False, readable=True,
                                    help="Test-data declaration: the project's TOML (config/contract-test.demo.toml "
                                         "is an example) or the official data.xml, one per contract; repeatable"),
    cert: Path | None = typer.Option(None, "--cert", exists=True, dir_okay=False,
                                     help="Client function certificate (PEM) for mutual TLS"),
    key: Path | None = typer.Option(None, "--key", exists=True, dir_okay=False, help="Its private key (PEM)"),
    ca: Path | None = typer.Option(None, "--ca", exists=True, dir_okay=False,
                                   help="CA certificates the producer's server certificate is checked against "
                                        "(PEM; default: the system's)"),
    junit: Path | None = typer.Option(None, "--junit", dir_okay=False, help="Write a JUnit XML report here"),
    html: Path | None = typer.Option(None, "--html", dir_okay=False, help="Write the HTML report here"),
    quick: bool = typer.Option(False, "--quick", help="Run the non-functional cases (family 6) for seconds "
                               "instead of minutes"),
    load_seconds: float | None = typer.Option(None, "--load-seconds", min=0.1, help="Run each family-6 case "
                                              "this many seconds (overrides the declaration and --quick)"),
    case: list[str] | None = typer.Option(None, "--case", help="Run only this case or family (e.g. 1.2.1, 1.2, "
                                          "5); repeatable"),
    skip: list[str] | None = typer.Option(None, "--skip", help="Skip this case or family; repeatable"),
    seed: int = typer.Option(20240101, "--seed", help="Seed of the random periods: a run can be repeated"),
    timeout: float = typer.Option(27.0, "--timeout", min=0.1, help="Seconds to wait for an answer (TKB: 27)"),
) -> None:
    """Run the national producer test cases (families 1-7 of Inera's suites) against a producer.

    Exit status 0 when no case failed, 1 when a case failed, 2 when the command line or the
    declaration cannot be used.
    """
    console = stderr_console()
    try:
        decl = declaration.load(data)
        verify = tls_context(cert, key, ca)
        options = runner.RunOptions(endpoint=endpoint, verify=verify, quick=quick, load_seconds=load_seconds,
                                    only=tuple(case or ()), skip=tuple(skip or ()), seed=seed, timeout=timeout)
        for chosen in declaration.covered(decl, contract):
            runner.service_url(chosen, endpoint)
    except (declaration.DeclarationError, ValueError, OSError, ssl.SSLError) as exc:
        console.print(f"[red]contract-test:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(code=EXIT_UNUSABLE) from None

    try:
        result = runner.run(decl, contract, options, report_console.progress(console),
                            report_console.starting(console))
    except runner.ConnectionProblem as exc:
        console.print(f"[red]contract-test: cannot connect to the producer[/red] {escape(exc.url)}\n"
                      f"  {escape(exc.why)}\n  {escape(offered(cert))}\nNo case was run.", highlight=False)
        raise typer.Exit(code=EXIT_UNUSABLE) from None
    report_console.summary(console, result)
    if junit:
        report_junit.write(result, junit)
        console.print(f"JUnit XML: {junit}", highlight=False)
    if html:
        report_html.write(result, html)
        console.print(f"HTML report: {html}", highlight=False)
    if result.failed:
        raise typer.Exit(code=EXIT_FAILED)
