"""Console output: one line per case while the suite runs, then a summary table and the failed cases."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adapter.suite.cases import Case, Session
from adapter.suite.declaration import LOAD_CASES
from adapter.suite.results import CaseResult, Status, SuiteResult

_STYLE = {Status.PASSED: "green", Status.FAILED: "bold red", Status.SKIPPED: "yellow"}
_MARK = {Status.PASSED: "PASS", Status.FAILED: "FAIL", Status.SKIPPED: "SKIP"}


def progress(console: Console):
    """A callback for runner.run that prints each case as it finishes."""

    def show(result: CaseResult) -> None:
        style = _STYLE[result.status]
        console.print(f"[{style}]{_MARK[result.status]}[/{style}] {escape(result.contract.title)} "
                      f"{escape(result.name)} [dim]{result.seconds:.2f} s[/dim]", highlight=False)
        if result.status is not Status.PASSED:
            for reason in result.reasons[:5]:
                console.print(f"      [dim]{escape(_short(reason))}[/dim]", highlight=False)
            if len(result.reasons) > 5:
                console.print(f"      [dim]… {len(result.reasons) - 5} more in the reports[/dim]", highlight=False)

    return show


def starting(console: Console):
    """A callback for runner.run announcing the long cases (family 6) before they run."""

    def announce(session: Session, case: Case) -> None:
        if case.family != 6:
            return
        plan = session.load.plan(case.number) if case.number in LOAD_CASES else "under load"
        then = ", then recovery" if case.number == "6.2.1" else ""
        console.print(f"[dim]…   {escape(session.contract.title)} {escape(case.number)} {escape(case.title)}: "
                      f"{escape(plan)}{then}[/dim]", highlight=False)

    return announce


def summary(console: Console, result: SuiteResult) -> None:
    mark = result.declaration_mark
    table = Table(title="Contract suite summary" + (f" ({mark})" if mark else ""))
    table.add_column("contract")
    table.add_column("service address", overflow="fold")
    for status in Status:
        table.add_column(status.value, justify="right", style=_STYLE[status])
    for contract in result.contracts:
        counts = result.counts(contract.key)
        table.add_row(contract.title, result.endpoints.get(contract.key, ""),
                      *(str(counts[s]) for s in Status))
    total = result.counts()
    table.add_row("all", "", *(str(total[s]) for s in Status), style="bold")
    console.print(table)
    if mark:
        console.print(f"[bold yellow]{escape(mark)}[/bold yellow]: family 6 ran a lighter load than the official "
                      "suite's; run without --quick and --load-seconds for the self-declaration.", highlight=False)
        for shortfall in result.not_for_declaration:
            console.print(f"  [yellow]{escape(shortfall)}[/yellow]", highlight=False)
    if result.failed:
        failed = Table(title="Failed cases", show_lines=True)
        failed.add_column("contract")
        failed.add_column("case")
        failed.add_column("reason", overflow="fold")
        for case in result.failed:
            more = f" (+{len(case.reasons) - 1} more)" if len(case.reasons) > 1 else ""
            failed.add_row(case.contract.title, case.name, escape(_short(case.reasons[0]) + more))
        console.print(failed)


def _short(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[:limit] + " …"
