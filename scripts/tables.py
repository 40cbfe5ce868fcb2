#!/usr/bin/env python3
"""`make tables`: the result tables of docs/, regenerated from the runs.

Each table lives between two markers in a page and is replaced by what a run
wrote, never retyped:

    <!-- table:bench -->  ... <!-- /table:bench -->   from target/bench/results.json (make bench)
    <!-- table:drill -->  ... <!-- /table:drill -->   from target/drill/results.json (make drill)

A results file holds the table its run rendered ("table") and the machine it
ran on; a missing file leaves its table alone and says so. `--check` only
reports whether the pages hold what the files say (exit 1 if not).
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TABLES = [
    ("bench", ROOT / "target/bench/results.json", ROOT / "docs/benchmarks.md", "make bench"),
    ("drill", ROOT / "target/drill/results.json", ROOT / "docs/drills.md", "make drill"),
]


def rendered(name, results, command):
    doc = json.loads(results.read_text())
    table = doc.get("table")
    if not table:
        sys.exit(f"{results.relative_to(ROOT)} holds no rendered table: re-run {command} with this code")
    machine = doc.get("machine", {})
    where = f"{machine.get('cpu', 'unknown CPU')}, {machine.get('cores', '?')} cores" if machine else "this machine"
    when = doc.get("measuredAt", "")[:10]
    note = f"_Written by `make tables` from `{results.relative_to(ROOT)}` ({command}, {where}, {when}); do not edit by hand._"
    return f"<!-- table:{name} -->\n{note}\n\n{table.strip()}\n<!-- /table:{name} -->"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, results, page, command in TABLES:
        if not results.exists():
            print(f"tables: no {results.relative_to(ROOT)} ({command} writes it); {page.name}'s {name} table left as it is")
            continue
        text = page.read_text()
        pattern = re.compile(rf"<!-- table:{name} -->.*?<!-- /table:{name} -->", re.S)
        if not pattern.search(text):
            sys.exit(f"{page.relative_to(ROOT)} has no <!-- table:{name} --> ... <!-- /table:{name} --> markers")
        new = pattern.sub(lambda _: rendered(name, results, command), text, count=1)
        if new == text:
            print(f"tables: {page.relative_to(ROOT)} already holds {results.relative_to(ROOT)}")
        elif check:
            stale.append(page.relative_to(ROOT))
        else:
            page.write_text(new)
            print(f"tables: {page.relative_to(ROOT)} rewritten from {results.relative_to(ROOT)}")
    if stale:
        sys.exit(f"tables: {', '.join(map(str, stale))} differ from the runs: run make tables")


if __name__ == "__main__":
    main()
