#!/usr/bin/env python3
"""Build a kustomization the way `kustomize build` does, for the subset deploy/kubernetes uses.

    kustomize_lite.py DIR            print the built manifests
    kustomize_lite.py DIR --compare FILE
                                     also check FILE (e.g. `kubectl kustomize DIR` output) holds
                                     exactly the same objects

No registry this project reaches ships kustomize itself (kubectl, where installed, embeds it,
and then the lint compares both builds). The overlays therefore keep to what this file
implements exactly, and anything else in a kustomization.yaml is refused rather than ignored:
  - `resources`: YAML files and directories holding a kustomization.yaml, built recursively;
  - `patches`: `path` to a JSON 6902 patch (a YAML list of operations, applied with the
    `jsonpatch` package, RFC 6902) and a `target` naming `kind` and `name` (optionally `group`,
    `version`, `namespace`).
"""
import argparse
import os
import sys

import jsonpatch
import yaml

ALLOWED = {"apiVersion", "kind", "resources", "patches"}


def build(directory):
    path = os.path.join(directory, "kustomization.yaml")
    with open(path, encoding="utf-8") as handle:
        kustomization = yaml.safe_load(handle) or {}
    unknown = set(kustomization) - ALLOWED
    if unknown:
        sys.exit(f"kustomize_lite: {path}: unsupported fields {sorted(unknown)}; "
                 f"keep overlays to {sorted(ALLOWED)} or extend scripts/kustomize_lite.py")
    objects = []
    for resource in kustomization.get("resources", []):
        target = os.path.normpath(os.path.join(directory, resource))
        if os.path.isdir(target):
            objects.extend(build(target))
        else:
            with open(target, encoding="utf-8") as handle:
                objects.extend(d for d in yaml.safe_load_all(handle) if d)
    seen = set()
    for obj in objects:
        key = identity(obj)
        if key in seen:
            sys.exit(f"kustomize_lite: {path}: {key} is defined twice")
        seen.add(key)
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path", "target"}:
            sys.exit(f"kustomize_lite: {path}: a patch needs exactly `path` and `target`: {patch}")
        with open(os.path.join(directory, patch["path"]), encoding="utf-8") as handle:
            operations = yaml.safe_load(handle)
        if not isinstance(operations, list):
            sys.exit(f"kustomize_lite: {patch['path']}: only JSON 6902 patches (a list of operations)")
        target = patch["target"]
        matched = [o for o in objects if matches(o, target)]
        if not matched:
            sys.exit(f"kustomize_lite: {path}: patch {patch['path']} matches no object ({target})")
        for obj in matched:
            patched = jsonpatch.apply_patch(obj, operations)
            objects[objects.index(obj)] = patched
    return objects


def identity(obj):
    meta = obj.get("metadata", {})
    return (obj.get("apiVersion"), obj.get("kind"), meta.get("namespace"), meta.get("name"))


def matches(obj, target):
    unknown = set(target) - {"group", "version", "kind", "name", "namespace"}
    if unknown:
        sys.exit(f"kustomize_lite: unsupported target fields {sorted(unknown)}")
    api = obj.get("apiVersion", "")
    group, _, version = api.rpartition("/")
    return (obj.get("kind") == target.get("kind")
            and obj.get("metadata", {}).get("name") == target.get("name")
            and target.get("group", group) == group
            and target.get("version", version) == version
            and target.get("namespace", obj.get("metadata", {}).get("namespace")) == obj.get("metadata", {}).get("namespace"))


def literal_strings(dumper, value):
    """Multi-line strings (the config's TOML) as block scalars, readable and linted as such."""
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


yaml.SafeDumper.add_representer(str, literal_strings)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--compare")
    args = parser.parse_args()
    objects = build(args.directory)
    if args.compare:
        with open(args.compare, encoding="utf-8") as handle:
            other = {identity(o): o for o in yaml.safe_load_all(handle) if o}
        mine = {identity(o): o for o in objects}
        if mine != other:
            for key in sorted(set(mine) | set(other), key=str):
                if mine.get(key) != other.get(key):
                    print(f"kustomize_lite: {key} differs from {args.compare}", file=sys.stderr)
            return 1
        print(f"kustomize_lite: {len(mine)} objects, identical to {args.compare}", file=sys.stderr)
    yaml.safe_dump_all(objects, sys.stdout, sort_keys=False, default_flow_style=False, width=1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
