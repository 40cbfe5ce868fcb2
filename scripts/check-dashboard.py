#!/usr/bin/env python3
"""Every metric on the template's dashboard exists, as it is drawn.

A CloudWatch widget whose namespace, name or dimensions are off by one
letter draws nothing and reports no error, so the dashboard is checked
here, in `make test`:

- a `fanrush` metric must be one the code emits (a `counter!`, `gauge!` or
  `histogram!` in shared/src), with exactly the dimensions the EMF recorder
  gives it: `Function` (the name a function's main.rs installs the recorder
  under, for a function that runs that code) plus the metric's own labels;
- an AWS metric must be one AWS documents for its namespace, with one of
  its documented dimension sets, naming a resource of the right type;
- every metric the code emits appears on the dashboard, and every widget
  draws something (no widget stays empty).

It then breaks a copy of the dashboard in each of those ways and requires
each break to be found, so the check itself can fail.
"""
import copy
import json
import re
import sys
from pathlib import Path

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parent.parent

# The AWS metrics a dashboard may use, with their documented dimension sets.
AWS = {
    # Lambda Developer Guide, "Types of metrics for Lambda functions" and
    # "Monitoring concurrency": FunctionName, or FunctionName and Resource
    # (a version or alias, "name:alias").
    "AWS/Lambda": {
        "metrics": {
            "Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions",
            "ProvisionedConcurrentExecutions", "ProvisionedConcurrencyUtilization",
            "ProvisionedConcurrencyInvocations", "ProvisionedConcurrencySpilloverInvocations",
        },
        "dimensions": [{"FunctionName"}, {"FunctionName", "Resource"}],
        # Provisioned concurrency is reported for the alias or version only.
        "alias_only": {
            "ProvisionedConcurrentExecutions", "ProvisionedConcurrencyUtilization",
            "ProvisionedConcurrencyInvocations", "ProvisionedConcurrencySpilloverInvocations",
        },
    },
    # SQS Developer Guide, "Available CloudWatch metrics for Amazon SQS":
    # the one dimension is QueueName.
    "AWS/SQS": {
        "metrics": {
            "ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateAgeOfOldestMessage", "NumberOfMessagesSent", "NumberOfMessagesReceived",
            "NumberOfMessagesDeleted",
        },
        "dimensions": [{"QueueName"}],
    },
    # API Gateway Developer Guide, "Monitor CloudWatch metrics for HTTP APIs
    # in API Gateway": ApiId; ApiId and Stage; ApiId, Stage and Route.
    "AWS/ApiGateway": {
        "metrics": {"Count", "4xx", "5xx", "Latency", "IntegrationLatency", "DataProcessed"},
        "dimensions": [{"ApiId"}, {"ApiId", "Stage"}, {"ApiId", "Stage", "Route"}],
    },
}

# What each AWS dimension must name: a resource of this type (its Ref or the
# attribute), written as the template's ${...} reference.
DIMENSION_TARGETS = {
    "FunctionName": ("AWS::Serverless::Function", re.compile(r"^\$\{(\w+)\}$")),
    "Resource": ("AWS::Serverless::Function", re.compile(r"^\$\{(\w+)\}:live$")),
    "QueueName": ("AWS::SQS::Queue", re.compile(r"^\$\{(\w+)\.QueueName\}$")),
    "ApiId": ("AWS::Serverless::HttpApi", re.compile(r"^\$\{(\w+)\}$")),
}

# Which function runs the code in each part of shared/src (what its main.rs
# wires up); the recorder names it in the Function dimension.
RUNS = [
    ("usecases/api/", {"entry-api"}),
    ("usecases/entrance/", {"entry-api"}),
    ("adapters/redis_gate/", {"entry-api", "scheduler"}),
    ("usecases/writer.rs", {"writer"}),
    ("usecases/provisioning.rs", {"scheduler"}),
]

MACRO = re.compile(r'\b(?:metrics::)?(counter|gauge|histogram)!\(\s*"(\w+)"((?:\s*,\s*"\w+"\s*=>\s*[^,)]+)*)\s*\)')
LABEL = re.compile(r'"(\w+)"\s*=>')
RECORDER = re.compile(r'telemetry::metrics\("([\w-]+)"\)')


def emitted():
    """The metrics the code emits: name -> (label keys, functions)."""
    installed = set()
    for main in (ROOT / "functions").glob("*/src/main.rs"):
        installed.update(RECORDER.findall(main.read_text()))
    found = {}
    for path in sorted((ROOT / "shared/src").rglob("*.rs")):
        rel = path.relative_to(ROOT / "shared/src").as_posix()
        for _, name, labels in MACRO.findall(path.read_text()):
            functions = set().union(*[f for prefix, f in RUNS if rel.startswith(prefix)])
            if not functions:
                sys.exit(f"{rel} emits {name}, and no function in RUNS runs that file: add it")
            unknown = functions - installed
            if unknown:
                sys.exit(f"RUNS names {sorted(unknown)}, which no functions/*/src/main.rs installs the recorder for")
            keys = frozenset(LABEL.findall(labels))
            prior = found.get(name)
            if prior and prior[0] != keys:
                sys.exit(f"{name} is emitted with labels {sorted(prior[0])} and {sorted(keys)}")
            found[name] = (keys, (prior[1] if prior else set()) | functions)
    if not found:
        sys.exit("no metric macros found in shared/src: the pattern no longer matches the code")
    return found


def load_dashboard(template_path):
    template = cfn_yaml.load(str(template_path))
    resources = template["Resources"]
    dashboards = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    if len(dashboards) != 1:
        sys.exit(f"expected one AWS::CloudWatch::Dashboard, found {len(dashboards)}")
    body = dashboards[0]["Properties"]["DashboardBody"]
    if not (isinstance(body, dict) and list(body) == ["Fn::Sub"]):
        sys.exit("DashboardBody must be one !Sub")
    sub = body["Fn::Sub"]
    if isinstance(sub, str):
        return resources, json.loads(sub)
    # !Sub [text, {Var: !If [condition, !Sub text, ""]}]: parts shown only
    # when a condition holds (the cache's alarms, when the stack creates
    # the cache). The check reads the widest dashboard: each variable's
    # text when its condition holds.
    if not (isinstance(sub, list) and len(sub) == 2 and isinstance(sub[0], str) and isinstance(sub[1], dict)):
        sys.exit("DashboardBody must be !Sub text or !Sub [text, variables]")
    text = sub[0]
    for name, value in sub[1].items():
        branch = value.get("Fn::If", [None, None])[1] if isinstance(value, dict) else None
        if isinstance(branch, dict) and isinstance(branch.get("Fn::Sub"), str):
            branch = branch["Fn::Sub"]
        if not isinstance(branch, str):
            sys.exit(f"DashboardBody variable {name} must be !If [condition, !Sub text, text]")
        text = text.replace("${" + name + "}", branch)
    return resources, json.loads(text)


def rows(widget):
    """A metric widget's rows, the "." shorthand expanded."""
    previous = []
    for row in widget["properties"].get("metrics", []):
        if row and isinstance(row[0], dict):
            yield row
            continue
        plain = [v for v in row if not isinstance(v, dict)]
        plain = [previous[i] if v == "." else v for i, v in enumerate(plain)]
        previous = plain
        yield plain + [v for v in row if isinstance(v, dict)]


SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}\s+MetricName=\"(\w+)\"((?:\s+\w+=\"[^\"]*\")*)'")


def problems(resources, body, code):
    found = []
    shown = set()

    def check_fanrush(name, dims, where):
        if name not in code:
            found.append(f"{where}: fanrush metric {name} is not emitted by the code")
            return
        keys, functions = code[name]
        if set(dims) != {"Function"} | keys:
            found.append(f"{where}: {name} has dimensions {sorted(dims)}, the code emits {sorted({'Function'} | keys)}")
        elif dims["Function"] is not None and dims["Function"] not in functions:
            found.append(f"{where}: {name} is emitted by {sorted(functions)}, not Function={dims['Function']}")
        shown.add(name)

    for i, widget in enumerate(body.get("widgets", [])):
        props = widget.get("properties", {})
        title = props.get("title", f"widget {i}")
        if widget["type"] == "text":
            if not props.get("markdown"):
                found.append(f"{title}: an empty text widget")
            continue
        if widget["type"] == "alarm":
            alarms = props.get("alarms", [])
            for ref in alarms:
                m = re.fullmatch(r"\$\{(\w+)\.Arn\}", ref)
                if not m or resources.get(m.group(1), {}).get("Type") != "AWS::CloudWatch::Alarm":
                    found.append(f"{title}: {ref} is not an alarm of the template")
            defined = {k for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
            missing = defined - {re.sub(r"^\$\{(\w+)\.Arn\}$", r"\1", a) for a in alarms}
            if missing:
                found.append(f"{title}: alarms missing from the widget: {sorted(missing)}")
            continue
        metric_rows = list(rows(widget))
        if not metric_rows:
            found.append(f"{title}: draws nothing")
        if not props.get("region"):
            found.append(f"{title}: no region")
        ids = set()
        for row in metric_rows:
            if isinstance(row[0], dict):
                expression = row[0].get("expression", "")
                for schema, name, filters in SEARCH.findall(expression):
                    namespace, *keys = [k.strip() for k in schema.split(",")]
                    if namespace != "fanrush":
                        found.append(f"{title}: a SEARCH outside the fanrush namespace: {expression}")
                        continue
                    dims = {k: None for k in keys}
                    for k, v in re.findall(r"(\w+)=\"([^\"]*)\"", filters):
                        dims[k] = v
                    check_fanrush(name, dims, title)
                continue
            options = row[-1] if isinstance(row[-1], dict) else {}
            plain = [v for v in row if not isinstance(v, dict)]
            if len(plain) < 2 or len(plain) % 2:
                found.append(f"{title}: a malformed metric row {row}")
                continue
            namespace, name = plain[0], plain[1]
            dims = dict(zip(plain[2::2], plain[3::2]))
            if "id" in options:
                ids.add(options["id"])
            where = f"{title}: {namespace} {name}"
            if namespace == "fanrush":
                check_fanrush(name, dims, title)
            elif namespace in AWS:
                spec = AWS[namespace]
                if name not in spec["metrics"]:
                    found.append(f"{where} is not a documented metric of {namespace}")
                if set(dims) not in spec["dimensions"]:
                    found.append(f"{where} has dimensions {sorted(dims)}, documented: {spec['dimensions']}")
                if name in spec.get("alias_only", ()) and "Resource" not in dims:
                    found.append(f"{where} is reported per alias or version: it needs Resource")
                for key, value in dims.items():
                    kind, pattern = DIMENSION_TARGETS.get(key, (None, None))
                    m = pattern.match(value) if pattern else None
                    if not m or resources.get(m.group(1), {}).get("Type") != kind:
                        found.append(f"{where}: {key}={value} does not name a {kind} of the template")
            else:
                found.append(f"{where}: namespace {namespace} is not one fanrush emits or AWS documents here")
        for row in metric_rows:
            if isinstance(row[0], dict) and "SEARCH" not in row[0].get("expression", ""):
                used = set(re.findall(r"\b([a-z]\w*)\b", row[0]["expression"])) - {"PERIOD"}
                if not used & ids or used - ids - {"period"}:
                    found.append(f"{title}: expression {row[0]['expression']} uses ids not on the widget")
    for name in sorted(set(code) - shown):
        found.append(f"{name} is emitted by the code and shown on no widget")
    return found


def main():
    resources, body = load_dashboard(ROOT / "template.yaml")
    code = emitted()
    found = problems(resources, body, code)
    if found:
        print("dashboard:", *found, sep="\n  ")
        sys.exit(1)

    # The check must catch each kind of break.
    def broken(edit):
        b = copy.deepcopy(body)
        edit(b)
        return problems(resources, b, code)

    def metric_row(b, namespace):
        for w in b["widgets"]:
            for row in w.get("properties", {}).get("metrics", []):
                if not isinstance(row[0], dict) and row[0] == namespace:
                    return row
        raise AssertionError(f"no {namespace} row to break")

    breaks = {
        "a misspelt fanrush metric": lambda b: metric_row(b, "fanrush").__setitem__(1, "EntriesAcepted"),
        "a fanrush metric without its Function": lambda b: metric_row(b, "fanrush").__setitem__(2, "Fn"),
        "a fanrush metric under another function": lambda b: metric_row(b, "fanrush").__setitem__(3, "writerx"),
        "an undocumented Lambda metric": lambda b: metric_row(b, "AWS/Lambda").__setitem__(1, "Throttle"),
        "an SQS dimension naming no queue": lambda b: metric_row(b, "AWS/SQS").__setitem__(3, "${HttpApi}"),
        "an empty widget": lambda b: b["widgets"][1]["properties"].__setitem__("metrics", []),
    }
    for what, edit in breaks.items():
        if not broken(edit):
            sys.exit(f"the dashboard check missed {what}")
    widgets = sum(1 for w in body["widgets"] if w["type"] == "metric")
    print(f"dashboard: {widgets} metric widgets, {len(code)} fanrush metrics, all drawn as emitted or documented")


if __name__ == "__main__":
    main()
