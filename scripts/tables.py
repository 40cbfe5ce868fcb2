#!/usr/bin/env python3
"""`make tables`: every result figure in docs/ and the code's measured
constants, regenerated from the recorded runs, never retyped.

From target/bench/results.json (make bench):
  - shared/src/rules/scaling/measured.rs: the MEASURED_* constants the
    preflight, `fanrush simulate` and `fanrush plan` use, with the machine
    and the date of the run;
  - <!-- table:bench --> in docs/benchmarks.md: the run's table.
Then, with the CLI built on those constants:
  - <!-- table:worked --> in docs/line.md: the worked event's three
    simulated runs (`fanrush simulate --json`);
  - <!-- table:budget --> in docs/line.md: the worked event's peak second on
    the measured core, from the bench's own figures;
  - <!-- table:scaling --> in docs/scaling.md: the worked event without a
    line, under default and raised quotas;
  - docs/charts/*.svg (scripts/charts.sh).
From target/drill/results.json (make drill):
  - <!-- table:drill --> in docs/drills.md.
From the code alone (the CLI built on measured.rs):
  - <!-- table:platform --> in docs/scaling.md: `fanrush preflight` of a
    platform's hour on one shard and on three (`--shards`).
  - <!-- table:preflight --> in docs/scaling.md: `fanrush preflight` of the
    worked event, the one page that says which quotas it needs. make test
    runs `--check` on it, so a change to the code's limits or constants
    that leaves the page behind fails;
  - <!-- table:examples --> in docs/scaling.md: `fanrush plan` and
    `fanrush simulate` run on the examples the page walks through;
  - docs/cli.md: the CLI's reference, from its clap definitions
    (`fanrush --markdown-help`), checked the same way.

A missing results file leaves what it writes alone and says so. `--check`
only reports whether the files hold what the runs say (exit 1 if not); it
does not rebuild the CLI.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "target/bench/results.json"
DRILL = ROOT / "target/drill/results.json"
MEASURED = ROOT / "shared/src/rules/scaling/measured.rs"
FANRUSH = ROOT / "target/debug/fanrush"

# Each constant, the bench figure it takes, and what it is (its doc comment).
CONSTANTS = [
    (
        "MEASURED_GATE_ADMISSIONS_PER_SECOND",
        "line: admitted fans/s on one Redis core (admit + confirm)",
        """New fans one Redis core admits per second through a busy line: the
calls an admitted fan costs (it joins the door, claims its grant at a later
call, its entry is confirmed), each measured apart and added up: `fanrush
measure-gate`'s "admitted fans" (the same code). The ceiling the preflight
and `fanrush simulate` use, and the one a line's `admissionsPerSecond` is
set from. A loopback figure of one machine's core: ElastiCache's network
adds latency per call, not work, but its cores differ, so measure the node.""",
    ),
    (
        "MEASURED_GATE_ANSWERS_PER_SECOND",
        "line: gate answers/s to a sold-out event",
        """The gate's cheaper answers per second on one core (`admit.lua` for a
sold-out event).""",
    ),
    (
        "MEASURED_LINE_SYNCS_PER_SECOND",
        "line: line.lua syncs/s, no places, on one Redis core",
        """`line.lua` syncs per second on one core that carry no place, each
reading ten seconds of counts back.""",
    ),
    (
        "MEASURED_LINE_PLACES_PER_SECOND",
        "line: places counted/s in line.lua syncs, on one Redis core",
        """Places one core counts per second inside `line.lua` syncs (each fan's
first join, counted once): syncs of 50 places, less an empty sync's cost.""",
    ),
    (
        "MEASURED_GATE_BYTES_PER_FAN",
        "gate: bytes per admitted fan (36-character id, no note)",
        """Bytes the gate holds per admitted fan of an event (its record, a
36-character id such as a Cognito `sub`, no note): `MEMORY USAGE` of the
event's keys over 20,000 confirmed fans. The preflight's memory check.""",
    ),
    (
        "MEASURED_GATE_BYTES_PER_NOTE",
        "gate: bytes a 280-character note adds to its fan",
        """Bytes a note of the most characters an entry may carry (280) adds to
its fan's: the preflight counts a full note for every fan unless told
otherwise (`--note-chars`).""",
    ),
    (
        "MEASURED_WRITER_ROWS_PER_SECOND",
        "writer rows/s, SQS batches of 100",
        """Rows per second one writer invocation inserts, SQS batches of 100,
PostgreSQL on loopback. The preflight drains at one writer's rate: a lower
bound, as `MaximumConcurrency` writers add more only while the database
keeps up. Over RDS Proxy each batch adds network round trips: measure.""",
    ),
]

# The worked event (calendars/million-fans.json): one opening, three runs.
WORKED = [
    "--peak-rps", "63750", "--ramp-seconds", "2", "--decay-seconds", "15", "--hold-seconds", "58",
    "--duration-ms", "20", "--provisioned", "7650", "--capacity", "100000", "--json",
]
SCALING = [
    "--peak-rps", "63750", "--ramp-seconds", "2", "--decay-seconds", "15", "--hold-seconds", "58",
    "--duration-ms", "20", "--capacity", "100000", "--json",
]
SCALING_RUNS = [
    ("default quotas, 7,650 provisioned", ["--provisioned", "7650"]),
    ("raised quotas, 7,650 provisioned",
     ["--provisioned", "7650", "--account-limit", "8000", "--api-rate", "64000", "--api-burst", "32000"]),
    ("raised quotas, none provisioned",
     ["--provisioned", "0", "--account-limit", "8000", "--api-rate", "64000", "--api-burst", "32000"]),
]
RUNS = [
    ("1. default quotas", []),
    ("2. raised, no line", ["--account-limit", "8000", "--api-rate", "64000", "--api-burst", "32000"]),
    ("3. raised, a line at the suggested rate",
     ["--account-limit", "9000", "--api-rate", "80000", "--api-burst", "40000", "--line-rate", "suggested"]),
]


def rel(p):
    return p.relative_to(ROOT)


def provenance(doc, results, command):
    machine = doc.get("machine", {})
    where = f"{machine.get('cpu', 'unknown CPU')}, {machine.get('cores', '?')} cores" if machine else "this machine"
    when = doc.get("measuredAt", "")[:10]
    return where, when, f"_Written by `make tables` from `{rel(results)}` ({command}, {where}, {when}); do not edit by hand._"


def figure(doc, name):
    for f in doc["figures"]:
        if f["name"] == name:
            return f
    sys.exit(f"{rel(BENCH)} has no figure {name!r}: re-run make bench with this code")


def measured_rs(doc):
    where, when, _ = provenance(doc, BENCH, "make bench")
    out = [
        "//! The figures of the last recorded `make bench` run that the preflight,",
        "//! `fanrush simulate` and `fanrush plan` use. Written by `make tables` from",
        f"//! `{rel(BENCH)}` ({where}, {when}); do not edit by hand:",
        "//! run `make bench`, then `make tables`.",
        "",
        "/// Where and when these figures were measured.",
        f'pub const MEASURED_ON: &str = "{where}, {when}";',
    ]
    for name, fig, doc_text in CONSTANTS:
        value = round(figure(doc, fig)["value"])
        out.append("")
        out.extend(f"/// {line}" for line in doc_text.splitlines())
        out.append(f'/// `make bench`\'s "{fig}".')
        out.append(f"pub const {name}: f64 = {value:_}.0;")
    return "\n".join(out) + "\n"


# The worked event's preflight: a default account (1,000 concurrent
# executions, less the stack's 22 reserved), the morning of the event.
PREFLIGHT = ["--calendar", "calendars/million-fans.json", "--account-limit", "1000", "--unreserved", "978",
             "--now", "2026-12-05T09:00:00Z"]


def preflight_block():
    run = subprocess.run([str(FANRUSH), "preflight", *PREFLIGHT], cwd=ROOT, capture_output=True, text=True)
    if run.returncode not in (0, 1) or not run.stdout.strip():
        sys.exit(f"tables: fanrush preflight failed ({run.returncode}): {run.stderr.strip()}")
    command = "fanrush preflight " + " ".join(PREFLIGHT)
    return f"_Written by `make tables` from `{command}`; do not edit by hand._\n\n```text\n{run.stdout.rstrip()}\n```"


# A platform's hour (calendars/platform-drops.json): the million-fan drop
# and two drops of 200,000 fans at the same time, on one shard and on three.
PLATFORM = ["--calendar", "calendars/platform-drops.json", "--account-limit", "1000", "--unreserved", "978",
            "--now", "2026-12-05T09:00:00Z"]


def platform_block():
    parts = []
    for shards in ("1", "3"):
        args = [*PLATFORM, "--shards", shards]
        run = subprocess.run([str(FANRUSH), "preflight", *args], cwd=ROOT, capture_output=True, text=True)
        if run.returncode not in (0, 1) or not run.stdout.strip():
            sys.exit(f"tables: fanrush preflight failed ({run.returncode}): {run.stderr.strip()}")
        lines = [line for line in run.stdout.splitlines()
                 if line.startswith("shard ") or ("redis" in line and not line.startswith("     ->"))]
        parts.append(f"$ fanrush preflight {' '.join(args)} | grep -E 'redis|^shard'\n" + "\n".join(lines))
    note = ("_Written by `make tables` from the two commands shown (their Redis lines: the Lambda and API Gateway "
            "checks are the worked event's); do not edit by hand._")
    return note + "\n\n```text\n" + "\n\n".join(parts) + "\n```"


# The commands docs/scaling.md shows, with what they print.
EXAMPLES = [
    ["plan", "--calendar", "calendars/two-overlapping.json", "--duration-ms", "150", "--account-limit", "10000"],
    ["simulate", "--peak-rps", "10000", "--duration-ms", "150", "--account-limit", "10000", "--no-retries", "--json"],
    ["simulate", "--peak-rps", "10000", "--duration-ms", "150", "--account-limit", "10000", "--no-retries",
     "--provisioned", "1800", "--json"],
]


def examples_block():
    lines = ["_Written by `make tables` from the CLI itself; do not edit by hand._", "", "```sh"]
    for i, args in enumerate(EXAMPLES):
        run = subprocess.run([str(FANRUSH), *args], cwd=ROOT, capture_output=True, text=True, check=True)
        if i:
            lines.append("")
        lines.append("fanrush " + " ".join(args))
        out = run.stdout.rstrip()
        if "--json" in args:
            # Keys sorted here: serde_json keeps insertion order when a
            # workspace build unifies its preserve_order feature, and a
            # build of the CLI alone does not.
            out = json.dumps(json.loads(out), sort_keys=True, separators=(",", ":"))
        lines += ["# " + line if line else "#" for line in out.splitlines()]
    lines.append("```")
    return "\n".join(lines)


def cli_reference():
    run = subprocess.run([str(FANRUSH), "--markdown-help"], capture_output=True, text=True, check=True)
    return ("<!-- Written by make tables from `fanrush --markdown-help` (the CLI's clap definitions); "
            "do not edit by hand. -->\n\n" + run.stdout.rstrip() + "\n")


def replace_block(page, name, body, check, stale):
    text = page.read_text()
    pattern = re.compile(rf"<!-- table:{name} -->.*?<!-- /table:{name} -->", re.S)
    if not pattern.search(text):
        sys.exit(f"{rel(page)} has no <!-- table:{name} --> ... <!-- /table:{name} --> markers")
    new = pattern.sub(lambda _: f"<!-- table:{name} -->\n{body.strip()}\n<!-- /table:{name} -->", text, count=1)
    write(page, new, check, stale)


def write(path, new, check, stale):
    if path.exists() and path.read_text() == new:
        print(f"tables: {rel(path)} already holds the runs")
    elif check:
        stale.append(rel(path))
    else:
        path.write_text(new)
        print(f"tables: {rel(path)} rewritten")


def n(x):
    return f"{x:,.0f}"


def simulated(base, runs):
    out = []
    for title, extra in runs:
        run = subprocess.run([str(FANRUSH), "simulate", *base, *extra], capture_output=True, text=True, check=True)
        out.append((title, json.loads(run.stdout)))
    return out


def runs_table(note, runs, rows):
    """A markdown table: a column per simulated run, a row per figure."""
    lines = [note, "", "| | " + " | ".join(t for t, _ in runs) + " |", "|---|" + "--:|" * len(runs)]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(r) for _, r in runs) + " |")
    return "\n".join(lines)


def scaling_table(note):
    return runs_table(note, simulated(SCALING, SCALING_RUNS), [
        ("requests (first tries and retries)", lambda r: n(r["requests"])),
        ("throttled by API Gateway", lambda r: n(r["throttledByApiGateway"])),
        ("throttled by Lambda", lambda r: n(r["throttledByLambda"])),
        ("refused by Redis (503)", lambda r: n(r["refusedByRedis"])),
        ("gave up", lambda r: n(r["gaveUp"])),
        ("peak concurrency", lambda r: n(r["peakConcurrency"])),
        ("Redis core at its busiest second", lambda r: f"{r['redisPeakLoad'] * 100:.0f}%"),
    ])


def worked_table(note):
    return runs_table(note, simulated(WORKED, RUNS), [
        ("requests through API Gateway and Lambda", lambda r: n(r["requests"])),
        ("of which polls", lambda r: n(r["polls"])),
        ("of which retries", lambda r: n(r["retries"])),
        ("peak requests/s", lambda r: n(r["peakRequestsPerSecond"])),
        ("throttled", lambda r: n(r["throttled"])),
        ("refused by Redis (503)", lambda r: n(r["refusedByRedis"])),
        ("gave up", lambda r: n(r["gaveUp"])),
        ("places sold", lambda r: n(r["admitted"])),
        ("Redis core at its busiest second", lambda r: f"{r['redisPeakLoad'] * 100:.0f}%"),
        ("wait p50 / max", lambda r: f"{r['waitP50Seconds']:.1f} s / {r['waitMaxSeconds']:.1f} s"),
        ("line rate (admissions/s)", lambda r: n(r["lineRate"]) if r.get("lineRate") else "-"),
    ])


def budget_table(doc, note):
    rate = figure(doc, "line: worked event, suggested rate")
    peak = figure(doc, "line: worked event, peak second share of the core")
    sim = figure(doc, "line: worked event, simulated busiest second")
    lines = [
        note,
        "",
        "| | value |",
        "|---|--:|",
        f"| admitted fans/s on one core (the ceiling) | {n(figure(doc, 'line: admitted fans/s on one Redis core (admit + confirm)')['value'])} |",
        f"| line.lua syncs/s carrying no place | {n(figure(doc, 'line: line.lua syncs/s, no places, on one Redis core')['value'])} |",
        f"| places counted/s in syncs | {n(figure(doc, 'line: places counted/s in line.lua syncs, on one Redis core')['value'])} |",
        f"| the suggested rate | {n(rate['value'])} admissions/s |",
        f"| the peak second, counted | {peak['value']:.1f}%: {peak['limitName']} |",
        f"| the busiest simulated second | {sim['value']:.1f}% ({sim['limitName']}) |",
    ]
    return "\n".join(lines)


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    if BENCH.exists():
        doc = json.loads(BENCH.read_text())
        if not doc.get("table"):
            sys.exit(f"{rel(BENCH)} holds no rendered table: re-run make bench with this code")
        _, _, note = provenance(doc, BENCH, "make bench")
        write(MEASURED, measured_rs(doc), check, stale)
        # A section re-run on its own and merged into the run says so, with why.
        rerun = "".join(f" Section `{name}` was run on its own at {s['measuredAt'][:16].replace('T', ' ')} UTC and "
                        f"merged into these results: {s['why']}."
                        for name, s in sorted(doc.get("sections", {}).items()))
        replace_block(ROOT / "docs/benchmarks.md", "bench", f"{note}{rerun}\n\n{doc['table']}", check, stale)
        if not check:
            subprocess.run(["cargo", "build", "--quiet", "-p", "fanrush-cli"], cwd=ROOT, check=True)
        if FANRUSH.exists():
            worked_note = (f"_Written by `make tables`: `fanrush simulate` on the constants of `{rel(MEASURED)}` "
                           f"(`{rel(BENCH)}`); do not edit by hand._")
            replace_block(ROOT / "docs/line.md", "worked", worked_table(worked_note), check, stale)
            replace_block(ROOT / "docs/scaling.md", "scaling", scaling_table(worked_note), check, stale)
        replace_block(ROOT / "docs/line.md", "budget", budget_table(doc, note), check, stale)
        if not check:
            subprocess.run([str(ROOT / "scripts/charts.sh")], cwd=ROOT, check=True)
    else:
        print(f"tables: no {rel(BENCH)} (make bench writes it); the measured constants and their tables left as they are")
    if not check:
        subprocess.run(["cargo", "build", "--quiet", "-p", "fanrush-cli"], cwd=ROOT, check=True)
    if FANRUSH.exists():
        replace_block(ROOT / "docs/scaling.md", "preflight", preflight_block(), check, stale)
        replace_block(ROOT / "docs/scaling.md", "platform", platform_block(), check, stale)
        replace_block(ROOT / "docs/scaling.md", "examples", examples_block(), check, stale)
        write(ROOT / "docs/cli.md", cli_reference(), check, stale)
    elif check:
        sys.exit(f"tables: {rel(FANRUSH)} is not built: cargo build -p fanrush-cli")
    if DRILL.exists():
        doc = json.loads(DRILL.read_text())
        if not doc.get("table"):
            sys.exit(f"{rel(DRILL)} holds no rendered table: re-run make drill with this code")
        _, _, note = provenance(doc, DRILL, "make drill")
        replace_block(ROOT / "docs/drills.md", "drill", f"{note}\n\n{doc['table']}", check, stale)
    else:
        print(f"tables: no {rel(DRILL)} (make drill writes it); docs/drills.md's table left as it is")
    if stale:
        sys.exit(f"tables: {', '.join(map(str, stale))} differ from the runs: run make tables")


if __name__ == "__main__":
    main()
