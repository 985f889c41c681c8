"""Family 7: filtering by the original service consumer (HTTP header x-rivta-original-serviceconsumer-hsaid).

7.1 and 7.2 apply only to producers that hide information from some consumers; they run when the
declaration names such a consumer. 7.3 always runs: any other consumer gets the same answer.
"""

from __future__ import annotations

from adapter.suite import records as R
from adapter.suite.cases.base import Case, CaseContext

OTHER_CONSUMER = "SE0000000000-NPOSUITE"


async def care_unit_hidden(ctx: CaseContext) -> None:
    hidden = ctx.decl.hidden_consumer
    if not hidden:
        ctx.skip("no consumer with hidden care units declared (not applicable without such filtering)")
    base = await ctx.baseline()
    label = f"as consumer {hidden}"
    got = await ctx.ask(label, consumer=hidden)
    if not (got.usable and base.usable):
        return
    everything, shown = R.document_ids(base.records, ctx.contract), R.document_ids(got.records, ctx.contract)
    if not shown < everything:
        ctx.fail(f"{label}: {len(shown)} records, expected fewer than the {len(everything)} of the unfiltered answer"
                 + ("" if shown <= everything else " and only records of it"))
    wanted = ctx.decl.filter_string
    if wanted:
        if wanted in R.text_of(got.records):
            ctx.fail(f"{label}: the filterString is still in the answer")
        if wanted not in R.text_of(base.records):
            ctx.note("the filterString is not in the unfiltered answer either: it shows nothing")


async def consumer_hidden(ctx: CaseContext) -> None:
    blocked = ctx.decl.blacklisted_consumer
    if not blocked:
        ctx.skip("no blocked consumer declared (not applicable without such filtering)")
    label = f"as consumer {blocked}"
    got = await ctx.ask(label, consumer=blocked)
    if got.usable and got.records:
        ctx.fail(f"{label}: {len(got.records)} records where an empty answer was expected")


async def consumer_independent(ctx: CaseContext) -> None:
    other = ctx.decl.other_consumer or OTHER_CONSUMER
    base = await ctx.baseline()
    label = f"as consumer {other}"
    got = await ctx.ask(label, consumer=other)
    if got.usable and base.usable:
        ctx.compare(label, R.document_ids(got.records, ctx.contract), R.document_ids(base.records, ctx.contract))


CASES = (
    Case("7.1", "CareUnit_Blacklisted", "Vårdenhet bortfiltrerad för konsument / a care unit hidden from a consumer",
         care_unit_hidden),
    Case("7.2", "Consumer_Blacklisted", "Tomt svar för bortfiltrerad konsument / empty answer for a blocked "
         "consumer", consumer_hidden),
    Case("7.3", "Consumer_Independent", "Samma svar oavsett konsument / the same answer for any other consumer",
         consumer_independent),
)
