#!/usr/bin/env python3
"""`helm lint` and `helm template` for scripts/deploy-lint-k8s.sh, through Helm's own Go SDK.

No registry this project reaches ships the helm binary, but PyPI's helm-python-sdk wraps Helm's
official Go SDK (v4) in a shared library: chart loading, values coalescing, values.schema.json
validation, the template engine and the linter are Helm's, not reimplementations. This file only
gives them the command-line shape the lint script needs:

    helm_sdk.py lint CHART [-f VALUES]... [--kube-version v1.30.0]   (always --strict)
    helm_sdk.py template CHART [-f VALUES]... [--name N] [--namespace NS] [--notes] [--base-dir D]
    helm_sdk.py package CHART --destination DIR     (prints the archive's path)

`template` prints the manifests as `helm template` does: one document per object, each headed by
`# Source: <template>`, in Helm's install order; `--notes` prints the rendered NOTES.txt instead;
`--base-dir D` writes the kustomize base instead: D/palisade.yaml (the core objects) and
D/monitoring.yaml (the monitoring.coreos.com ones, which need prometheus-operator's CRDs).
"""
import argparse
import re
import sys

import helm_python as helm
import yaml

# Helm's kind install order (pkg/release/util/kind_sorter.go); other kinds come last.
INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService",
]


def load_values(files):
    """Merge the -f files left to right, as helm does (maps deep-merged, the rest replaced)."""
    def merge(base, over):
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value
        return base

    values = {}
    for path in files or []:
        with open(path, encoding="utf-8") as handle:
            merge(values, yaml.safe_load(handle) or {})
    return values


def documents(rendered):
    """(kind, name, source, text) of every non-empty document, in install order."""
    docs = []
    for source, text in rendered.items():
        base = source.rsplit("/", 1)[-1]
        if base.startswith("_") or base == "NOTES.txt":
            continue
        for part in re.split(r"(?m)^---[ \t]*$", text):
            body = part.strip("\n")
            meaningful = [l for l in body.splitlines() if l.strip() and not l.lstrip().startswith("#")]
            if not meaningful:
                continue
            obj = yaml.safe_load(body)
            if not isinstance(obj, dict):
                sys.exit(f"helm_sdk: {source} renders a document that is not a mapping")
            kind = obj.get("kind", "")
            rank = INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)
            docs.append((rank, kind, obj.get("metadata", {}).get("name", ""), source, body))
    docs.sort(key=lambda d: (d[0], d[1], d[2]))
    return docs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["lint", "template", "package"])
    parser.add_argument("chart")
    parser.add_argument("-f", "--values", action="append", default=[])
    parser.add_argument("--name", default="palisade")
    parser.add_argument("--namespace", default="palisade")
    parser.add_argument("--kube-version", default="v1.30.0")
    parser.add_argument("--notes", action="store_true")
    parser.add_argument("--base-dir")
    parser.add_argument("--destination")
    args = parser.parse_args()
    values = load_values(args.values)

    if args.command == "lint":
        report = helm.lint(args.chart, values, strict=True, namespace=args.namespace,
                           kube_version=args.kube_version)
        severities = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
        failed = False
        for message in report.get("messages") or []:
            severity = message.get("severity", 0)
            print(f"[{severities.get(severity, severity)}] {message.get('path')}: {message.get('error')}")
            failed = failed or severity >= 2
        for error in report.get("errors") or []:
            print(f"[ERROR] {error}")
            failed = True
        print(f"{report.get('total_charts_linted', 0)} chart(s) linted, {'failed' if failed else 'no failures'}")
        return 1 if failed else 0

    if args.command == "package":
        print(helm.package(args.chart, destination=args.destination))
        return 0

    with helm.Chart.load(args.chart) as chart:
        chart.validate_schema(chart.merge_values(values))
        rendered = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
    if args.notes:
        notes = [text for source, text in rendered.items() if source.endswith("/NOTES.txt")]
        print("\n".join(notes).strip())
        return 0
    given = ", ".join(args.values) if args.values else "its default values"
    header = ("# Generated by `scripts/deploy-lint-k8s.sh --update-base` from deploy/helm/palisade with\n"
              f"# {given} (release palisade, namespace palisade). Do not edit: the lint\n"
              "# fails when this file differs from a fresh render. Change the chart, or patch in an overlay.\n")
    core, monitoring = [], []
    for _rank, _kind, _name, source, body in documents(rendered):
        doc = f"---\n# Source: {source}\n{body}\n"
        is_monitoring = yaml.safe_load(body).get("apiVersion", "").startswith("monitoring.coreos.com/")
        (monitoring if is_monitoring and args.base_dir else core).append(doc)
    if args.base_dir:
        for name, docs in (("palisade.yaml", core), ("monitoring.yaml", monitoring)):
            with open(f"{args.base_dir}/{name}", "w", encoding="utf-8") as handle:
                handle.write(header + "".join(docs))
        return 0
    sys.stdout.write("".join(core))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except helm.HelmError as error:
        print(f"helm_sdk: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
