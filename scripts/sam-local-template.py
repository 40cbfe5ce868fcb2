#!/usr/bin/env python3
"""The template `sam local invoke` runs (make sam-local): the built template
with each function's code in the build directory, no secrets extension layer
(SAM's local resolver cannot evaluate the condition around Layers; the
deploy-time equivalent is SecretsExtensionLayerArn=none), and the local
variables given as NAME=value set on every function in the secrets' place.
Usage: sam-local-template.py BUILT_TEMPLATE OUT NAME=value..."""
import sys

# The SAM CLI's own YAML reader and writer: they know CloudFormation's short
# tags (!Ref, !If), which a plain YAML loader refuses.
from samcli.yamlhelper import yaml_dump, yaml_parse


def main(built, out, assignments):
    template = yaml_parse(open(built).read())
    local = dict(a.split("=", 1) for a in assignments)
    functions = 0
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        functions += 1
        props = resource.setdefault("Properties", {})
        props["CodeUri"] = name
        props.pop("Layers", None)
        variables = props.setdefault("Environment", {}).setdefault("Variables", {})
        # Secret ids name secrets the extension would read: the plain local
        # values take their place.
        for key in [k for k in variables if k.endswith("_SECRET_ID")]:
            del variables[key]
        variables.update(local)
    template.get("Globals", {}).get("Function", {}).pop("Layers", None)
    env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    for key in [k for k in env if k.endswith("_SECRET_ID")]:
        del env[key]
    open(out, "w").write(yaml_dump(template))
    print(f"sam-local-template: {functions} functions in {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
