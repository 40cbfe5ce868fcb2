#!/usr/bin/env python3
"""No hand-typed result figure in docs/: a sentence that gives a number with
a unit and says it was measured (`measured`, `here`, `on this machine`,
`took`, ...) must sit inside a block `make tables` writes
(`<!-- table:NAME -->` ... `<!-- /table:NAME -->`), where the figure comes
from a recorded results file. Settings, limits and targets are numbers too:
a sentence that only names them, or says it is a bound (a target, a
timeout, a default, a limit), passes.

Exit 1 with each offending sentence named. `--self-test` checks that the
check fails on a page holding a hand-typed figure and passes on one whose
figure sits in a generated block.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIGURE = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?\s*"
    r"(?:x SET|x\b|/s\b|per second|ms\b|µs|s\b|%|MB|MiB|GiB|KiB|rows\b|fans\b|minutes?\b|seconds?\b)",
    re.I,
)
SAYS_MEASURED = re.compile(
    r"\b(?:measured|here|on this machine|on this VM|took|ran at|came to|in the last run|recorded|admitted|sold)\b", re.I
)
# A sentence that states a bound (a target, a timeout, a default) names a
# setting, whatever verb it uses.
SAYS_BOUND = re.compile(r"\b(?:target|at least|at most|timeout|default|limit)\b", re.I)
GENERATED = re.compile(r"<!-- table:(\w+) -->.*?<!-- /table:\1 -->", re.S)
CODE = re.compile(r"```.*?```", re.S)

def sentences(text):
    text = CODE.sub("", GENERATED.sub("", text))
    for block in re.split(r"\n\s*\n|\n(?=\s*[-|*] )", text):
        yield from re.split(r"(?<=[.;:])\s+", " ".join(block.split()))


def hand_typed(page, text):
    """The sentences of `text` that give a measured figure by hand."""
    found = []
    for s in sentences(text):
        s = s.lstrip("-*| ")
        if FIGURE.search(s) and SAYS_MEASURED.search(s) and not SAYS_BOUND.search(s):
            found.append(s)
    return found


def self_test():
    typed = "The gate admitted 9,337 fans/s on one core.\n\nWe measured 0.2 ms here, on this machine.\n"
    generated = "<!-- table:bench -->\nWe measured 0.2 ms here.\n<!-- /table:bench -->\n\nThe timeout is 250 ms.\n"
    wanted = ["The gate admitted 9,337 fans/s on one core.", "We measured 0.2 ms here, on this machine."]
    assert hand_typed("docs/x.md", typed) == wanted, hand_typed("docs/x.md", typed)
    assert hand_typed("docs/x.md", generated) == [], hand_typed("docs/x.md", generated)
    print("check-figures: the self-test fails a hand-typed figure and passes a generated one")


def main():
    if "--self-test" in sys.argv[1:]:
        self_test()
        return 0
    bad = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        page = path.relative_to(ROOT).as_posix()
        bad += [f"{page}: {s}" for s in hand_typed(page, path.read_text())]
    for b in bad:
        print(f"hand-typed figure (make tables writes results; say where the figure is instead): {b}", file=sys.stderr)
    if not bad:
        print("check-figures: every measured figure in docs/ sits in a block make tables writes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
