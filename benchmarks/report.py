"""Turn a pytest-benchmark JSON file into the markdown results of docs/benchmarks.md.

Usage::

    .venv/bin/python -m pytest benchmarks --benchmark-only --benchmark-json=out.json
    .venv/bin/python benchmarks/report.py out.json                # print the markdown
    .venv/bin/python benchmarks/report.py out.json --write-docs   # and rewrite the page
    .venv/bin/python benchmarks/report.py out.json --check        # exit 1 on a MISS

Per case: the median time per call (the median round, divided by the calls in a round),
the overhead over the group's bare call, and that overhead divided by the reference
overhead of the group (the fastest peer's, or peer stack's for pipelines; for the
decorator groups, our decorator's). Then each performance target is checked and printed
as PASS or MISS (or NO DATA when its rows were not measured in the run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
TIMES = "\u00d7"


@dataclass(frozen=True)
class Group:
    id: str
    title: str
    #: Role of the rows whose smallest overhead is the reference of the ratio column.
    reference: str
    ratio_header: str


GROUPS = [
    Group("breaker-sync", "Closed circuit breaker, sync", "peer", "÷ fastest peer"),
    Group("breaker-async", "Closed circuit breaker, async", "peer", "÷ fastest peer"),
    Group("retry-sync", "Retry, first attempt succeeds, sync", "peer", "÷ fastest peer"),
    Group("retry-async", "Retry, first attempt succeeds, async", "peer", "÷ fastest peer"),
    Group("limiter-sync", "Token bucket with free tokens, sync", "peer", "÷ fastest peer"),
    Group("limiter-async", "Token bucket with free tokens, async", "peer", "÷ fastest peer"),
    Group("bulkhead-sync", "Bulkhead with a free slot, sync", "peer", "÷ fastest peer"),
    Group("bulkhead-async", "Bulkhead with a free slot, async", "peer", "÷ fastest peer"),
    Group("timeout-sync", "Timeout not hit, sync (worker thread)", "peer", "÷ fastest peer"),
    Group("timeout-async", "Timeout not hit, async", "peer", "÷ fastest peer"),
    Group(
        "pipeline-sync",
        "`Pipeline(Retry(), CircuitBreaker())`, sync",
        "peer-stack",
        "÷ fastest peer stack",
    ),
    Group(
        "pipeline-async",
        "`Pipeline(Retry(), CircuitBreaker())`, async",
        "peer-stack",
        "÷ fastest peer stack",
    ),
    Group(
        "full-pipeline-sync",
        "`Pipeline(Fallback, Retry, CircuitBreaker, TokenBucket, Bulkhead)`, sync",
        "peer-stack",
        "÷ fastest peer stack",
    ),
    Group(
        "full-pipeline-async",
        "`Pipeline(Fallback, Retry, CircuitBreaker, TokenBucket, Bulkhead)`, async",
        "peer-stack",
        "÷ fastest peer stack",
    ),
    Group(
        "full-pipeline-timeout-async",
        "`Pipeline(Fallback, Retry, CircuitBreaker, TokenBucket, Bulkhead, Timeout)`, async",
        "peer-stack",
        "÷ fastest peer stack",
    ),
    Group("decorator-sync", "Decorator choice, sync", "ours", "÷ our decorator"),
    Group("decorator-async", "Decorator choice, async", "ours", "÷ our decorator"),
    Group("metrics-sync", "Listeners and metrics, sync", "ours", "÷ breaker, nobody listening"),
    Group("http-sync", "HTTP requests, httpx sync (ns per request)", "peer", "÷ fastest peer"),
    Group("http-async", "HTTP requests, httpx async (ns per request)", "peer", "÷ fastest peer"),
    Group(
        "http-aiohttp-async", "HTTP requests, aiohttp (ns per request)", "peer", "÷ fastest peer"
    ),
    Group("metrics-async", "Listeners and metrics, async", "ours", "÷ breaker, nobody listening"),
    Group(
        "shadow-sync",
        "Shadow mode (free capacity), sync",
        "alternative",
        "÷ fastest enforcing policy",
    ),
    Group(
        "shadow-async",
        "Shadow mode (free capacity), async",
        "alternative",
        "÷ fastest enforcing policy",
    ),
    Group("hedge-sync", "Hedge, first attempt answers, sync (worker threads)", "peer", "÷ peer"),
    Group("hedge-async", "Hedge, first attempt answers, async", "peer", "÷ peer"),
    Group("adaptive-sync", "Adaptive concurrency under its limit, sync", "peer", "÷ fastest peer"),
    Group(
        "adaptive-async", "Adaptive concurrency under its limit, async", "peer", "÷ fastest peer"
    ),
    Group(
        "local-sync",
        "Adaptive throttle (healthy dependency) and chaos (not striking), sync",
        "alternative",
        "÷ token bucket",
    ),
    Group(
        "local-async",
        "Adaptive throttle (healthy dependency) and chaos (not striking), async",
        "alternative",
        "÷ token bucket",
    ),
]

#: Rows that cannot be measured, with the reason shown in the table.
NOT_AVAILABLE = {
    "breaker-async": [("pybreaker", "no asyncio support (its `call_async` needs Tornado)")],
    "pipeline-async": [("tenacity over pybreaker", "pybreaker has no asyncio support")],
}

#: Rows that only some environments can measure: shown as n/a (with the reason) only
#: when the run has no row with that label.
OPTIONAL = {
    "limiter-async": [("hyx `@tokenbucket(...)`", "hyx is not installed (optional peer)")],
    "timeout-async": [
        ("asyncio `async with timeout(1.0): await af(x)`", "needs Python 3.11 or later")
    ],
}


@dataclass(frozen=True)
class Target:
    """A performance target, checked on our primary (decorated) row of ``group``.

    ``kind`` is one of

    - ``"overhead"``: our overhead <= ``limit`` x the fastest peer decorator's overhead
      (in ``reference_group``);
    - ``"time"``: our time per call < the fastest peer decorator's time per call (in
      ``reference_group``); ``limit`` is unused;
    - ``"time-ratio"``: our time per call <= ``limit`` x the time per call of the case
      ``reference_case`` (a case id of ``reference_group``);
    - ``"time-ns"``: our time per call <= ``limit`` nanoseconds;
    - ``"overhead-ns"``: our overhead (time per call minus the group's bare call)
      <= ``limit`` nanoseconds.
    """

    title: str
    group: str  # where our primary row is
    reference_group: str  # where the reference is (unused by the absolute kinds)
    kind: str
    limit: float = 1.0
    reference_case: str | None = None  # for "time-ratio": the id of the reference case


TARGETS = [
    Target(
        'Shadow mode costs an admitted call nothing: `CircuitBreaker(mode="metrics_only")`, '
        "sync, time per call at most 1.1 x the enforcing breaker's",
        "shadow-sync",
        "shadow-sync",
        "time-ratio",
        1.1,
        reference_case="breaker-enforce",
    ),
    Target(
        "Shadow mode, async: time per call at most 1.1 x the enforcing breaker's",
        "shadow-async",
        "shadow-async",
        "time-ratio",
        1.1,
        reference_case="breaker-enforce",
    ),
    Target(
        "Hedge, async, first attempt answers: time per call at most 1.5 x the bare task "
        "group round trip",
        "hedge-async",
        "hedge-async",
        "time-ratio",
        1.5,
        reference_case="task-group",
    ),
    Target(
        "Hedge, sync: time per call at most 1.5 x a ThreadPoolExecutor round trip",
        "hedge-sync",
        "hedge-sync",
        "time-ratio",
        1.5,
        reference_case="executor",
    ),
    Target(
        "Adaptive concurrency under its limit, async: time per call",
        "adaptive-async",
        "adaptive-async",
        "time-ns",
        2000,
    ),
    Target(
        "Adaptive throttle, healthy dependency, sync: overhead over the bare call",
        "local-sync",
        "local-sync",
        "overhead-ns",
        1500,
    ),
    Target("Closed breaker overhead, sync", "breaker-sync", "breaker-sync", "overhead", 0.4),
    Target("Closed breaker overhead, async", "breaker-async", "breaker-async", "overhead", 0.4),
    Target("Retry success-path overhead, sync", "retry-sync", "retry-sync", "overhead", 0.15),
    Target("Retry success-path overhead, async", "retry-async", "retry-async", "overhead", 0.15),
    Target("Retry + breaker pipeline time per call, sync", "pipeline-sync", "breaker-sync", "time"),
    Target(
        "Retry + breaker pipeline time per call, async", "pipeline-async", "breaker-async", "time"
    ),
    Target(
        "Token bucket admit (free tokens), sync: overhead over the bare call "
        "(time per admitted call minus bare call)",
        "limiter-sync",
        "limiter-sync",
        "overhead-ns",
        450,
    ),
    Target(
        "Token bucket admit (free tokens), async: overhead over the bare call "
        "(time per admitted call minus bare call)",
        "limiter-async",
        "limiter-async",
        "overhead-ns",
        450,
    ),
    Target(
        "Bulkhead with a free slot, async: time per call",
        "bulkhead-async",
        "bulkhead-async",
        "time-ns",
        1000,
    ),
    Target(
        "Timeout not hit, async: time per call against `anyio.fail_after`",
        "timeout-async",
        "timeout-async",
        "time-ratio",
        1.1,
        reference_case="anyio-fail-after",
    ),
    Target(
        "Recommended pipeline without Timeout (Fallback, Retry, CircuitBreaker, TokenBucket, "
        "Bulkhead), sync: time per call",
        "full-pipeline-sync",
        "full-pipeline-sync",
        "time-ns",
        1500,
    ),
]


@dataclass
class Row:
    group: str
    id: str  # the case id within its group ("ours", "anyio-fail-after"...)
    label: str
    role: str
    primary: bool
    form: str  # "decorated" or "call"
    ns: float  # median per call
    iqr: float  # interquartile range per call
    rounds: int
    batch: int
    overhead: float | None = None


def merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of the suite as one: each case keeps its best (lowest) median.

    On a shared machine a burst of other work can slow one case in one run; the best of
    a few runs, each a median of many rounds, is what the code itself costs. Cases keep
    the order of the first run.
    """
    if len(runs) == 1:
        return runs[0]
    best: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for run in runs:
        for bench in run.get("benchmarks", []):
            key = str(bench.get("fullname") or bench.get("name"))
            if key not in best:
                order.append(key)
                best[key] = bench
            elif bench["stats"]["median"] < best[key]["stats"]["median"]:
                best[key] = bench
    merged = dict(runs[0])
    merged["benchmarks"] = [best[key] for key in order]
    merged["runs"] = len(runs)
    return merged


def load_rows(data: dict[str, Any]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if "group" not in info:
            continue
        batch = int(info.get("batch", 1))
        stats = bench["stats"]
        # pedantic(iterations=1): each round is one batch; stats are seconds per round.
        per_call = 1e9 / (batch * stats.get("iterations", 1))
        # Older runs did not store the id: it is also the end of the test's parameter id
        # ("group:id").
        case_id = info.get("id") or str(bench.get("param") or "").partition(":")[2]
        groups.setdefault(info["group"], []).append(
            Row(
                group=info["group"],
                id=case_id,
                label=info["case"],
                role=info["role"],
                primary=bool(info.get("primary")),
                form=info.get("form", "decorated"),
                ns=stats["median"] * per_call,
                iqr=stats["iqr"] * per_call,
                rounds=stats["rounds"],
                batch=batch,
            )
        )
    for rows in groups.values():
        base = next((r for r in rows if r.role == "baseline"), None)
        for row in rows:
            if base is not None and row is not base:
                row.overhead = row.ns - base.ns
    return groups


def fastest(rows: list[Row], role: str, form: str | None = None) -> Row | None:
    candidates = [
        r
        for r in rows
        if r.role == role and r.overhead is not None and (form is None or r.form == form)
    ]
    return min(candidates, key=lambda r: r.ns, default=None)


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


def fmt_ns(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}{TIMES}"


def fmt_against(value: float, limit: float, fmt: str) -> tuple[str, str]:
    """``value`` and ``limit`` formatted alike (``fmt`` is ``"ns"`` or ``"ratio"``), with
    as many more decimals as it takes (up to 3 more) for a value that differs from the
    limit not to print as the limit, so that a verdict on a near miss reads right."""
    first = 0 if fmt == "ns" else 2
    unit = "" if fmt == "ns" else TIMES
    for digits in range(first, first + 4):
        a, b = f"{value:,.{digits}f}{unit}", f"{limit:,.{digits}f}{unit}"
        if a != b:
            break
    return a, b


# -- machine facts --------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def facts(data: dict[str, Any]) -> list[str]:
    machine = data.get("machine_info", {})
    ours = machine.get("resilience_bench", {})
    when = data.get("datetime")
    if when:
        stamp = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
        date = stamp.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    else:
        date = "unknown"
    python = ours.get("python") or machine.get("python_version") or platform.python_version()
    impl = ours.get("python_implementation") or machine.get("python_implementation", "")
    cpu = ours.get("cpu_model") or cpu_model()
    count = ours.get("cpu_count")
    lines = [
        f"- Date: {date}",
        *(
            [f"- Runs: {data['runs']}; each case shows its best median over the runs"]
            if data.get("runs", 1) > 1
            else []
        ),
        f"- Python: {python} ({impl})" if impl else f"- Python: {python}",
        f"- CPU: {cpu}" + (f", {count} logical CPUs" if count else ""),
    ]
    if ours.get("platform"):
        lines.append(f"- Platform: {ours['platform']}")
    start, end = ours.get("loadavg_at_start"), ours.get("loadavg_at_end")
    if start:
        load = f"{start[0]:.2f} at start"
        if end:
            load += f", {end[0]:.2f} at end"
        lines.append(f"- Load average (1 min): {load}")
    commit = data.get("commit_info", {})
    if commit.get("id"):
        dirty = " (uncommitted changes)" if commit.get("dirty") else ""
        lines.append(f"- Commit: `{commit['id'][:10]}`{dirty}")
    versions = ours.get("versions")
    if versions:
        lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if ours.get("batch"):
        lines.append(
            f"- Each case: median of its rounds, {ours['batch']} calls per round "
            f"(about {ours.get('case_seconds', '?')} s per case)"
        )
    return lines


# -- the report -------------------------------------------------------------------------


def group_table(group: Group, rows: list[Row]) -> list[str]:
    reference = fastest(rows, group.reference)
    ref_overhead = reference.overhead if reference is not None else None
    lines = [
        f"#### {group.title}",
        "",
        f"| Case | ns per call | IQR (ns) | Overhead (ns) | Overhead {group.ratio_header} |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        label = f"**{row.label}**" if row.role == "ours" else row.label
        lines.append(
            f"| {label} | {fmt_ns(row.ns)} | {fmt_ns(row.iqr)} | {fmt_ns(row.overhead)} "
            f"| {fmt_ratio(ratio(row.overhead, ref_overhead))} |"
        )
    labels = {row.label for row in rows}
    missing = [(label, why) for label, why in OPTIONAL.get(group.id, []) if label not in labels]
    for label, why in [*NOT_AVAILABLE.get(group.id, []), *missing]:
        lines.append(f"| {label} | n/a: {why} | | | |")
    lines.append("")
    return lines


@dataclass
class Verdict:
    target: Target
    ok: bool | None  # None: not measured in this run
    text: str


def check(target: Target, groups: dict[str, list[Row]]) -> Verdict:
    """Check one target on our primary (decorated) row; see :class:`Target`.

    The peer-relative kinds ``overhead`` and ``time`` compare like for like: our
    decorated form against the fastest peer *decorator* (the form the issue's reference
    numbers were measured in). The fastest peer in any form (some peers' ``.call`` skips
    their own decorator's wrapper) is added to the text as context; it does not change
    the verdict.
    """
    ours = next((r for r in groups.get(target.group, []) if r.primary), None)
    if target.kind in ("time-ns", "overhead-ns", "time-ratio"):
        return check_other(target, ours, groups)
    peers = groups.get(target.reference_group, [])
    peer = fastest(peers, "peer", form="decorated")
    if ours is None or peer is None or ours.overhead is None or peer.overhead is None:
        return Verdict(target, None, "not measured in this run")
    any_form = fastest(peers, "peer")
    if target.kind == "overhead":
        value = ratio(ours.overhead, peer.overhead)
        ok = value is not None and value <= target.limit
        if value is None:
            shown, limit = fmt_ratio(value), fmt_ratio(target.limit)
        else:
            shown, limit = fmt_against(value, target.limit, "ratio")
        text = (
            f"{fmt_ns(ours.overhead)} ns vs {fmt_ns(peer.overhead)} ns "
            f"({peer.label}) = {shown}; limit {limit}"
        )
        if any_form is not None and any_form is not peer:
            text += (
                f" (vs the fastest peer in any form, {any_form.label}: "
                f"{fmt_ratio(ratio(ours.overhead, any_form.overhead))})"
            )
        return Verdict(target, ok, text)
    ok = ours.ns < peer.ns
    text = (
        f"{fmt_ns(ours.ns)} ns per call vs {fmt_ns(peer.ns)} ns for {peer.label} alone "
        f"= {fmt_ratio(ours.ns / peer.ns)}; must be under 1{TIMES}"
    )
    if any_form is not None and any_form is not peer:
        text += f" (vs {any_form.label} alone: {fmt_ratio(ours.ns / any_form.ns)})"
    return Verdict(target, ok, text)


def check_other(target: Target, ours: Row | None, groups: dict[str, list[Row]]) -> Verdict:
    """The kinds against a fixed number or a named reference case."""
    if ours is None:
        return Verdict(target, None, "not measured in this run")
    if target.kind == "time-ns":
        ok = ours.ns <= target.limit
        shown, limit = fmt_against(ours.ns, target.limit, "ns")
        text = f"{shown} ns per call ({ours.label}); limit {limit} ns"
        return Verdict(target, ok, text)
    if target.kind == "overhead-ns":
        if ours.overhead is None:
            return Verdict(target, None, "no bare call in this run")
        base = ours.ns - ours.overhead
        ok = ours.overhead <= target.limit
        shown, limit = fmt_against(ours.overhead, target.limit, "ns")
        text = (
            f"{fmt_ns(ours.ns)} ns per call ({ours.label}) - {fmt_ns(base)} ns bare call "
            f"= {shown} ns; limit {limit} ns"
        )
        return Verdict(target, ok, text)
    if target.kind == "time-ratio":
        reference = next(
            (r for r in groups.get(target.reference_group, []) if r.id == target.reference_case),
            None,
        )
        if reference is None:
            return Verdict(target, None, f"no {target.reference_case!r} case in this run")
        value = ours.ns / reference.ns
        ok = value <= target.limit
        shown, limit = fmt_against(value, target.limit, "ratio")
        text = (
            f"{fmt_ns(ours.ns)} ns per call vs {fmt_ns(reference.ns)} ns for {reference.label} "
            f"= {shown}; limit {limit}"
        )
        return Verdict(target, ok, text)
    raise ValueError(f"{target.title}: unknown target kind {target.kind!r}")


def verdict_word(verdict: Verdict) -> str:
    return {True: "PASS", False: "MISS", None: "NO DATA"}[verdict.ok]


def render(data: dict[str, Any]) -> tuple[str, list[Verdict]]:
    groups = load_rows(data)
    out = ["### Machine and run", "", *facts(data), "", "### Per case", ""]
    known = {g.id for g in GROUPS}
    extra = [Group(gid, gid, "peer", "÷ fastest peer") for gid in groups if gid not in known]
    for group in [*GROUPS, *extra]:
        if group.id in groups:
            out += group_table(group, groups[group.id])
    verdicts = [check(target, groups) for target in TARGETS]
    out += ["### Targets", "", "| Target | Measured | Verdict |", "|---|---|---|"]
    for v in verdicts:
        out.append(f"| {v.target.title} | {v.text} | **{verdict_word(v)}** |")
    return "\n".join(out).rstrip() + "\n", verdicts


def write_docs(page: Path, section: str) -> None:
    text = page.read_text(encoding="utf-8")
    try:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        raise SystemExit(f"{page}: no {START} ... {END} markers") from None
    page.write_text(f"{head}{START}\n\n{section}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "json", type=Path, nargs="+", help="output of --benchmark-json (one or more runs)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--write-docs",
        nargs="?",
        const=DOCS_PAGE,
        type=Path,
        metavar="PAGE",
        help=f"rewrite the results section of PAGE (default {DOCS_PAGE.relative_to(ROOT)})",
    )
    args = parser.parse_args(argv)
    data = merge_runs([json.loads(path.read_text(encoding="utf-8")) for path in args.json])
    section, verdicts = render(data)
    print(section)
    for v in verdicts:
        print(f"{verdict_word(v)}: {v.target.title}: {v.text}", file=sys.stderr)
    if args.write_docs is not None:
        write_docs(args.write_docs, section)
        print(f"wrote the results into {args.write_docs}", file=sys.stderr)
    if args.check and not all(v.ok for v in verdicts):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
