#!/usr/bin/env python3
"""The reference pages against the code they describe (make test runs it).

- docs/api.md names every (status, error code) pair the API code can answer,
  and no other; openapi.yaml's Error schema lists the same codes, and every
  such status is a response openapi.yaml declares.
- docs/configuration.md's table names every variable the functions read, and
  every variable it names is read by the code, by a library the page says
  reads it, or by the scripts.

- docs/deploy.md names only parameters and Outputs template.yaml has, and
  only `make` targets the Makefile has and `fanrush` commands the CLI has
  (asked of the built CLI, `--fanrush BIN`, when given).
- template.yaml's HTTP API gives every admin route, and no other, a
  throttle of its own (RouteSettings): an admin route left out would share
  the fans' throttle during an opening.

It reads the Rust source, not a running function: a code that only a test
could reach is still a code a client can be sent.
"""
import re
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API_SOURCES = [ROOT / "shared/src/usecases/api", ROOT / "shared/src/usecases/entrance"]
CONFIG_SOURCES = [ROOT / "shared/src", ROOT / "functions"]
# Variables read by a library rather than by fanrush's own code.
READ_BY_LIBRARIES = {
    "AWS_ENDPOINT_URL": "aws-config's endpoint resolution",
    "RUST_LOG": "tracing-subscriber's EnvFilter",
}

# http's constant names that Python's HTTPStatus spells differently.
STATUS_ALIASES = {"PAYLOAD_TOO_LARGE": 413}


def status_number(name):
    return STATUS_ALIASES.get(name) or HTTPStatus[name].value


def rust_files(dirs):
    for d in dirs:
        yield from sorted(d.rglob("*.rs"))


def strip_comments(text):
    return re.sub(r"//[^\n]*", "", text)


def match_arms(text, fn_name):
    """The `Self::Variant | Self::Other => value` arms of one fn's match."""
    body = re.search(rf"fn {fn_name}\(&self\)[^{{]*\{{(.*?)\n    \}}", text, re.S)
    if not body:
        sys.exit(f"check-references: fn {fn_name} not found in the Refusal impl")
    arms = {}
    for variants, value in re.findall(r"((?:Self::\w+(?:\s*\{\s*\.\.\s*\})?\s*\|?\s*)+)=>\s*([^,\n]+)", body.group(1)):
        for variant in re.findall(r"Self::(\w+)", variants):
            arms[variant] = value.strip()
    return arms


def code_pairs():
    """Every (status, code) the API code constructs."""
    pairs = set()
    for path in rust_files(API_SOURCES):
        text = strip_comments(path.read_text())
        for status, code in re.findall(r"new\(\s*StatusCode::(\w+),\s*\"([a-z_]+)\"", text):
            pairs.add((status_number(status), code))
        for code in re.findall(r"not_found\(\s*\"([a-z_]+)\"", text):
            pairs.add((404, code))
        if "pub enum Refusal" in text:
            statuses = match_arms(text, "status")
            codes = match_arms(text, "code")
            if statuses.keys() != codes.keys():
                sys.exit(f"check-references: Refusal's status and code arms differ: {statuses.keys() ^ codes.keys()}")
            for variant, status in statuses.items():
                pairs.add((status_number(status.removeprefix("StatusCode::")), codes[variant].strip('"')))
    return pairs


def doc_pairs(page):
    """(status, code) pairs written as 403 `a` / `b` in the page."""
    pairs = set()
    for status, codes in re.findall(r"\b([1-5]\d\d)\s+((?:`[a-z_]+`(?:\s+/\s+|,\s+|\s+or\s+)?)+)", page):
        for code in re.findall(r"`([a-z_]+)`", codes):
            pairs.add((int(status), code))
    return pairs


def openapi_codes_and_statuses(spec):
    schema = re.search(r"\n  schemas:\n    Error:\n((?:      .*\n)+)", spec)
    enum = re.search(r"\n        error:\n(?:          .*\n)*?          enum: \[([^\]]*)\]", "\n" + schema.group(1)) if schema else None
    codes = {c.strip() for c in enum.group(1).split(",")} if enum else set()
    statuses = {int(s) for s in re.findall(r'\n\s+"([1-5]\d\d)":', spec)}
    return codes, statuses


def check_api():
    problems = []
    code = code_pairs()
    docs = doc_pairs((ROOT / "docs/api.md").read_text())
    for status, c in sorted(code - docs):
        problems.append(f"docs/api.md does not name {status} `{c}`, which the code answers")
    for status, c in sorted(docs - code):
        problems.append(f"docs/api.md names {status} `{c}`, which no code answers")
    enum, statuses = openapi_codes_and_statuses((ROOT / "openapi.yaml").read_text())
    if not enum:
        problems.append("openapi.yaml's Error schema has no enum of error codes")
    codes = {c for _, c in code}
    for c in sorted(codes - enum):
        problems.append(f"openapi.yaml's Error enum lacks `{c}`")
    for c in sorted(enum - codes):
        problems.append(f"openapi.yaml's Error enum lists `{c}`, which no code answers")
    for status in sorted({s for s, _ in code} - statuses):
        problems.append(f"openapi.yaml declares no {status} response, which the code answers")
    return problems, len(code)


ENV_NAME = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"


def code_variables():
    """Variables read through std::env or config.rs's readers."""
    names = set()
    reader = re.compile(
        rf"(?:env::var(?:_os)?|\b(?:var|var_or|required|flag|number|millis|pem_file|from_env|env|missing))\(\s*\"({ENV_NAME})\""
    )
    for path in rust_files(CONFIG_SOURCES):
        text = strip_comments(path.read_text())
        names.update(reader.findall(text))
        # SecretSource::from_env(secret id variable, local-only value variable)
        for pair in re.findall(r"from_env\(\s*\"[A-Z0-9_]*\",\s*\"([A-Z0-9_]+)\"", text):
            names.add(pair)
    return names


def script_variables():
    names = set()
    for path in list((ROOT / "scripts").glob("*.sh")) + [ROOT / "Makefile"]:
        names.update(re.findall(rf"\$\{{({ENV_NAME}):-", path.read_text()))
    return names


def check_configuration():
    page = (ROOT / "docs/configuration.md").read_text()
    table = set()
    for row in re.findall(r"^\| (`[^|]*) \|", page, re.M):
        table.update(re.findall(rf"`({ENV_NAME})`", row))
    scripts_section = page.split("Scripts:", 1)[1] if "Scripts:" in page else ""
    listed_for_scripts = set(re.findall(rf"`({ENV_NAME})`", scripts_section))
    read = code_variables()
    problems = []
    for name in sorted(read - table):
        problems.append(f"docs/configuration.md's table lacks {name}, which the code reads")
    for name in sorted(table - read - READ_BY_LIBRARIES.keys()):
        problems.append(f"docs/configuration.md's table names {name}, which no code reads")
    scripts = script_variables()
    for name in sorted(listed_for_scripts - scripts):
        problems.append(f"docs/configuration.md lists {name} for the scripts, which no script reads")
    return problems, len(read)


def template_names():
    """The template's parameters and Outputs, by indentation (no YAML
    library: its tags (!Ref, !Sub) need a loader of their own)."""
    text = (ROOT / "template.yaml").read_text()

    def section(name):
        body = re.search(rf"^{name}:\n((?:(?:  .*)?\n)+)", text, re.M)
        return set(re.findall(r"^  ([A-Za-z0-9]+):", body.group(1), re.M)) if body else set()

    return section("Parameters"), section("Outputs")


def shell_lines(page):
    for block in re.findall(r"```sh\n(.*?)```", page, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" # ")[0].strip()
            if line:
                yield line


def check_deploy_guide(fanrush):
    page = (ROOT / "docs/deploy.md").read_text()
    parameters, outputs = template_names()
    problems = []
    # Tables whose first column names parameters or Outputs.
    for header, known, kind in (("parameter", parameters, "parameter"), ("output", outputs, "Output")):
        for table in re.findall(rf"^\| {header} \|.*\n\|[-|]+\n((?:\|.*\n)+)", page, re.M):
            for first in re.findall(r"^\| ([^|]+) \|", table, re.M):
                for name in re.findall(r"`([A-Za-z0-9]+)`", first):
                    if name not in known:
                        problems.append(f"docs/deploy.md names the {kind} {name}, which template.yaml lacks")
    # Parameters and Outputs named in prose or commands.
    for name in re.findall(r"OutputKey=='([A-Za-z0-9]+)'", page):
        if name not in outputs:
            problems.append(f"docs/deploy.md reads the Output {name}, which template.yaml lacks")
    for name in re.findall(r"`([A-Z][A-Za-z0-9]+)`", page):
        if re.search(r"(Arn|Url|Id|Quota|Concurrency|Seconds|Days|Level|Origin|Email|Architecture|Audience|Issuer)$", name) \
                and name not in parameters | outputs:
            problems.append(f"docs/deploy.md names `{name}`, neither a parameter nor an Output of template.yaml")
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    commands = 0
    for line in shell_lines(page):
        words = [w for w in line.split() if "=" not in w or w.startswith("-")]
        if not words:
            continue
        commands += 1
        if words[0] == "make" and len(words) > 1 and words[1] not in targets:
            problems.append(f"docs/deploy.md runs make {words[1]}, which the Makefile lacks")
        if words[0] == "fanrush" and fanrush:
            sub = [w for w in words[1:3] if not w.startswith("-")]
            run = subprocess.run([fanrush, *sub, "--help"], capture_output=True)
            if run.returncode != 0:
                problems.append(f"docs/deploy.md runs fanrush {' '.join(sub)}, which the CLI does not know")
    return problems, commands


def check_route_settings():
    text = (ROOT / "template.yaml").read_text()
    routes = set()
    for method, path in re.findall(r"^ +Method: (\w+)\n +Path: (\S+)", text, re.M):
        routes.add(f"{method} {path}")
    # admin-api's routes: the operators' and the public draw it serves.
    admin = {r for r in routes if r.split(" ", 1)[1].startswith(("/admin/", "/draws/"))}
    block = re.search(r"^      RouteSettings:\n((?:        .*\n)+)", text, re.M)
    throttled = set(re.findall(r'^        "([A-Z]+ [^"]+)":', block.group(1), re.M)) if block else set()
    problems = [f"template.yaml: the admin-api route {r} has no RouteSettings throttle of its own" for r in sorted(admin - throttled)]
    problems += [f"template.yaml: RouteSettings names {r}, which is no admin-api route of the API" for r in sorted(throttled - admin)]
    return problems, len(admin)


def main():
    fanrush = None
    if "--fanrush" in sys.argv:
        fanrush = sys.argv[sys.argv.index("--fanrush") + 1]
    api_problems, pairs = check_api()
    config_problems, variables = check_configuration()
    deploy_problems, commands = check_deploy_guide(fanrush)
    route_problems, admin_routes = check_route_settings()
    problems = api_problems + config_problems + deploy_problems + route_problems
    for p in problems:
        print(f"check-references: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"check-references: {pairs} (status, code) pairs and {variables} variables, each in its page; "
          f"{commands} commands of docs/deploy.md" + (" (fanrush's asked of the CLI)" if fanrush else "")
          + f"; {admin_routes} admin-api routes, each throttled on its own")


if __name__ == "__main__":
    main()
