#!/usr/bin/env python3
"""Least privilege, checked on what CloudFormation will really create.

The SAM template is first transformed with samtranslator (the library
`sam deploy` uses), so the roles SAM writes for each function, and the AWS
managed policies it attaches, are checked too, not only the statements the
template spells out. Fails when a statement uses a wildcard action or a "*"
resource where an ARN exists, or when a role gets a managed policy not
listed below with the reason it is allowed. Prints what remains "*".
"""
import json
import os
import sys

from cfnlint.decode import cfn_yaml
from samtranslator.translator.transform import transform

# Actions with no resource type: IAM accepts only "*" for them.
RESOURCELESS = {"lambda:GetAccountSettings"}

# Managed policies SAM attaches, and why each may stay (each grants "*").
MANAGED = {
    "AWSLambdaBasicExecutionRole": "logs:CreateLogGroup/CreateLogStream/PutLogEvents on '*': attached by SAM "
    "to every function it creates a role for; the log group is named after the function only once it exists",
    "AWSLambdaVPCAccessExecutionRole": "ec2 network-interface actions on '*': Lambda creates the function's "
    "ENIs in the VPC, and an ENI has no ARN before it is created (functions in the VPC only)",
}

# Parameter values for the transform: none, as for a first deploy (every parameter has a default).
PARAMETERS = {}


class NoManagedPolicyNames:
    """The template names no managed policy by name, so nothing to look up."""

    def load(self):
        return {}


def transformed(path):
    template = json.loads(json.dumps(cfn_yaml.load(path)))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # What `sam package` puts here; the transform insists on an S3 URI.
            resource["Properties"]["CodeUri"] = "s3://packaged/code.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(template, PARAMETERS, NoManagedPolicyNames())


def walk(node):
    """Statements, including those under Fn::If."""
    if isinstance(node, dict):
        if "Effect" in node and "Action" in node:
            yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def documents(template):
    """(resource, policy document) for every IAM policy in the template.
    Key policies are left out: there "*" names the key itself, and the
    account's own kms:* statement is the default key policy, which hands
    access decisions to IAM (listed as remaining below)."""
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        # A Cognito user pool's Policies is its password policy, not IAM.
        policies = props.get("Policies", []) or []
        for policy in policies if isinstance(policies, list) else []:
            yield name, policy.get("PolicyDocument", policy)
        if "PolicyDocument" in props:
            yield name, props["PolicyDocument"]


def as_list(v):
    return v if isinstance(v, list) else [v]


def main(path):
    template = transformed(path)
    problems, remaining = [], []
    for name, document in documents(template):
        for s in walk(document):
            actions = [a for a in as_list(s["Action"]) if isinstance(a, str)]
            resources = as_list(s.get("Resource", []))
            problems += [f"{name}: wildcard action {a!r}" for a in actions if "*" in a]
            if any(r == "*" for r in resources):
                if set(actions) <= RESOURCELESS:
                    remaining.append(f"{name}: {actions} on '*' (the action has no resource type)")
                else:
                    problems.append(f"{name}: Resource '*' for {actions} (name the ARN)")
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for arn in resource["Properties"].get("ManagedPolicyArns", []) or []:
            policy = arn.rsplit("/", 1)[-1] if isinstance(arn, str) else json.dumps(arn)
            if policy in MANAGED:
                remaining.append(f"{name}: {policy}: {MANAGED[policy]}")
            else:
                problems.append(f"{name}: managed policy {policy} (not reviewed; scope it inline)")
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::KMS::Key":
            remaining.append(f"{name}: key policy: the account administers the key through IAM (kms:* on the key)")
    for r in remaining:
        print(f"check-iam: remains '*': {r}")
    for p in problems:
        print(f"check-iam: {p}")
    print(f"check-iam: {len(problems)} problem(s) in the SAM-transformed template")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
