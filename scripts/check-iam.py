#!/usr/bin/env python3
"""Fails when an IAM statement in template.yaml uses a wildcard action or a
wildcard resource where a specific ARN exists. The only "*" resources allowed
are for actions IAM cannot scope to a resource (listed below, with why)."""
import sys

from cfnlint.decode import cfn_yaml

# Actions with no resource type: IAM accepts only "*" for them.
RESOURCELESS = {"lambda:GetAccountSettings"}


def statements(template):
    for name, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        for policy in props.get("Policies", []) or []:
            yield from ((name, s) for s in walk(policy))
        for policy in props.get("PolicyDocument", {}).get("Statement", []) or []:
            yield name, policy


def walk(node):
    """Statements inside a SAM policy, including those under Fn::If."""
    if isinstance(node, dict):
        if "Effect" in node and "Action" in node:
            yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def as_list(v):
    return v if isinstance(v, list) else [v]


def main(path):
    template = cfn_yaml.load(path)
    problems = []
    for name, s in statements(template):
        actions = [a for a in as_list(s["Action"]) if isinstance(a, str)]
        resources = as_list(s.get("Resource", []))
        for a in actions:
            if "*" in a:
                problems.append(f"{name}: wildcard action {a!r}")
        if any(r == "*" for r in resources) and not set(actions) <= RESOURCELESS:
            problems.append(f"{name}: Resource '*' for {actions} (name the ARN)")
    for p in problems:
        print(f"check-iam: {p}")
    print(f"check-iam: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
