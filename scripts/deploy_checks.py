#!/usr/bin/env python3
"""Palisade's own checks of rendered Kubernetes manifests, run by scripts/deploy-lint-k8s.sh.

    deploy_checks.py manifests --palisade BIN [--alerts FILE] MANIFEST...
    deploy_checks.py crds MANIFEST...

`manifests` checks what the generic validators cannot know about Palisade:
  - every Deployment: startup, liveness and readiness probes, readiness different from liveness
    (path or timing), every probe port a named port the container declares, every container port
    named; terminationGracePeriodSeconds above lifecycle.drain_delay + grace_period of the
    rendered config (5s and 30s when absent);
  - the security context of every container of every Deployment and CronJob: non-root (and a
    non-zero uid), read-only root filesystem, no privilege escalation, capabilities drop ALL,
    seccomp RuntimeDefault (from the container or its Pod);
  - no ServiceAccount token mounted, no Role/ClusterRole (Palisade never calls the API);
  - PodDisruptionBudget minAvailable below the replicas (or the HPA's minReplicas), or
    maxUnavailable >= 1; HPA minReplicas >= 2;
  - every CronJob: concurrencyPolicy Forbid, a deadline above the job's timeout, a UTC (or
    unset) time zone, `jobs run NAME --config
    /etc/palisade/palisade.toml` naming a job of the rendered config whose runner is "cronjob",
    and the config mounted;
  - the ConfigMap's palisade.toml passes `palisade validate` (with dummy values for the
    `${env:NAME}` references), unless it holds [jobs]/[databases] and the binary has no `jobs`
    command (then that one validation prints SKIPPED);
  - the PrometheusRule's groups are those of deploy/prometheus/alerts.yaml (runbook base URL
    aside); the ServiceMonitor scrapes /metrics on a Service port that exists; the ops port is
    never open to every source, and every Deployment and CronJob is selected by a NetworkPolicy
    when the render has any.

`crds` validates ServiceMonitor and PrometheusRule objects, which kubernetes-validate has no
schema for, against prometheus-operator's CRD models (PyPI: cloudcoil-models-prometheus-
operator, generated from the CRDs' OpenAPI schemas): types and required fields by pydantic, and
unknown fields by checking that the parsed object dumps back to exactly the input.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import tomllib

import yaml

CONFIG_PATH = "/etc/palisade/palisade.toml"
DEFAULT_RUNBOOK_BASE = "https://github.com/palisade-proxy/palisade/blob/main/docs/runbooks/"
DUMMY_ENV = {
    "APP_DATABASE_URL": "postgres://palisade@127.0.0.1:5432/app",
    "DATABASE_URL": "postgres://palisade@127.0.0.1:5432/app",
    "REDIS_URL": "redis://127.0.0.1:6379",
}


class Checker:
    def __init__(self, source):
        self.source = source
        self.failures = []
        self.passed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"  FAIL {self.source}: {what}")
        return ok


def load(path):
    with open(path, encoding="utf-8") as handle:
        return [d for d in yaml.safe_load_all(handle) if d]


def seconds(duration):
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", str(duration))
    if not match:
        raise ValueError(f"unreadable duration {duration!r}")
    value, unit = int(match.group(1)), match.group(2)
    return {"ms": value / 1000, "s": value, "m": value * 60, "h": value * 3600, "d": value * 86400}[unit]


def pod_spec(obj):
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] == "Job":
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "Pod":
        return obj["spec"]
    return None


def name_of(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def check_security(c, obj, spec):
    pod_sc = spec.get("securityContext") or {}
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        where = f"{name_of(obj)} container {container['name']}"
        sc = container.get("securityContext") or {}
        merged = {**pod_sc, **sc}
        c.check(merged.get("runAsNonRoot") is True, f"{where}: runAsNonRoot is not true")
        c.check(merged.get("runAsUser", 1) != 0, f"{where}: runAsUser is 0")
        c.check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem is not true")
        c.check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation is not false")
        c.check(not sc.get("privileged"), f"{where}: privileged")
        c.check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{where}: capabilities do not drop ALL")
        c.check(not (sc.get("capabilities") or {}).get("add"), f"{where}: capabilities added")
        c.check((merged.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
                f"{where}: seccompProfile is not RuntimeDefault")
    c.check(spec.get("automountServiceAccountToken") is False,
            f"{name_of(obj)}: automountServiceAccountToken is not false (Palisade never calls the API)")


def probe_key(probe):
    http = probe.get("httpGet") or {}
    return (http.get("path"), http.get("port"), probe.get("periodSeconds"),
            probe.get("timeoutSeconds"), probe.get("failureThreshold"), probe.get("initialDelaySeconds"))


def check_deployment(c, obj, config):
    spec = pod_spec(obj)
    for container in spec["containers"]:
        where = f"{name_of(obj)} container {container['name']}"
        ports = container.get("ports") or []
        names = {p.get("name") for p in ports}
        c.check(all(p.get("name") for p in ports), f"{where}: a container port has no name")
        probes = {k: container.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
        if container["name"] == "palisade":
            for kind, probe in probes.items():
                c.check(probe is not None, f"{where}: no {kind}")
            if probes["livenessProbe"] and probes["readinessProbe"]:
                c.check(probe_key(probes["livenessProbe"]) != probe_key(probes["readinessProbe"]),
                        f"{where}: readinessProbe is the livenessProbe (same path and timing)")
                c.check((probes["readinessProbe"].get("httpGet") or {}).get("path") == "/ready",
                        f"{where}: readinessProbe does not ask /ready")
                c.check((probes["livenessProbe"].get("httpGet") or {}).get("path") == "/live",
                        f"{where}: livenessProbe does not ask /live")
        else:
            for kind in ("livenessProbe", "readinessProbe"):
                c.check(probes[kind] is not None, f"{where}: no {kind}")
        for kind, probe in probes.items():
            if not probe:
                continue
            for action in ("httpGet", "tcpSocket", "grpc"):
                if action in probe:
                    port = probe[action].get("port")
                    c.check(isinstance(port, str) and port in names,
                            f"{where}: {kind} port {port!r} is not a named port of the container")
    lifecycle = config.get("lifecycle", {}) if config else {}
    needed = seconds(lifecycle.get("drain_delay", "5s")) + seconds(lifecycle.get("grace_period", "30s"))
    tgps = spec.get("terminationGracePeriodSeconds", 30)
    c.check(tgps > needed, f"{name_of(obj)}: terminationGracePeriodSeconds {tgps} is not above "
                           f"drain_delay + grace_period = {needed}s")
    annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
    c.check("checksum/config" in annotations, f"{name_of(obj)}: no checksum/config annotation (config changes would not roll)")


def validate_config(c, text, palisade):
    config = tomllib.loads(text)
    # Palisade reads PALISADE_SECTION__FIELD overrides (and PALISADE_CONFIG) from its
    # environment; the lint's own variables (LINT_PALISADE_BIN, ...) must not reach it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALISADE_")}
    for name in set(re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", text)):
        env.setdefault(name, DUMMY_ENV.get(name, "dummy-value-for-validate"))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "palisade.toml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        result = subprocess.run([palisade, "validate", "--config", path], env=env,
                                capture_output=True, text=True, check=False)
    output = (result.stdout + result.stderr).strip()
    if c.check(result.returncode == 0, f"palisade validate failed (exit {result.returncode}):\n{output}"):
        print(f"  ok   palisade validate: {output.splitlines()[-1] if output else 'valid'}")
    return config


def manifests(args):
    total_failures = 0
    with open(args.alerts, encoding="utf-8") as handle:
        alert_groups = yaml.safe_load(handle)["groups"]
    for path in args.files:
        c = Checker(os.path.basename(path))
        docs = load(path)
        by_kind = {}
        for obj in docs:
            by_kind.setdefault(obj["kind"], []).append(obj)
        print(f"{c.source}: {', '.join(f'{len(v)} {k}' for k, v in sorted(by_kind.items()))}")
        config = None
        for cm in by_kind.get("ConfigMap", []):
            text = (cm.get("data") or {}).get("palisade.toml")
            if text is not None:
                config = validate_config(c, text, args.palisade)
        c.check(config is not None, "no ConfigMap with palisade.toml")
        config = config or {}
        jobs = config.get("jobs", {})

        for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
            c.check(kind not in by_kind, f"a {kind} is rendered; Palisade needs no API access")
        for sa in by_kind.get("ServiceAccount", []):
            c.check(sa.get("automountServiceAccountToken") is False, f"{name_of(sa)}: token automounted")

        replicas = {}
        for deployment in by_kind.get("Deployment", []):
            check_deployment(c, deployment, config)
            check_security(c, deployment, pod_spec(deployment))
            replicas[deployment["metadata"]["name"]] = deployment["spec"].get("replicas", 1)
        for hpa in by_kind.get("HorizontalPodAutoscaler", []):
            c.check(hpa["spec"].get("minReplicas", 1) >= 2, f"{name_of(hpa)}: minReplicas below 2")
            c.check(hpa["spec"]["maxReplicas"] >= hpa["spec"].get("minReplicas", 1), f"{name_of(hpa)}: maxReplicas below minReplicas")
            target = hpa["spec"]["scaleTargetRef"]["name"]
            c.check(target in replicas, f"{name_of(hpa)}: scales {target}, which is not rendered")
            c.check("replicas" not in next((d["spec"] for d in by_kind.get("Deployment", []) if d["metadata"]["name"] == target), {}),
                    f"{name_of(hpa)}: the Deployment also sets replicas (they would fight)")
            replicas[target] = hpa["spec"].get("minReplicas", 1)
        for pdb in by_kind.get("PodDisruptionBudget", []):
            spec = pdb["spec"]
            floor = min(replicas.values()) if replicas else 0
            if "maxUnavailable" in spec:
                c.check(int(spec["maxUnavailable"]) >= 1, f"{name_of(pdb)}: maxUnavailable below 1")
            else:
                c.check(int(spec.get("minAvailable", 0)) < floor,
                        f"{name_of(pdb)}: minAvailable {spec.get('minAvailable')} is not below the replicas ({floor})")

        for cronjob in by_kind.get("CronJob", []):
            spec = cronjob["spec"]
            pspec = pod_spec(cronjob)
            check_security(c, cronjob, pspec)
            c.check(spec.get("concurrencyPolicy") == "Forbid", f"{name_of(cronjob)}: concurrencyPolicy is not Forbid")
            c.check(spec["jobTemplate"]["spec"].get("activeDeadlineSeconds"), f"{name_of(cronjob)}: no activeDeadlineSeconds")
            c.check("backoffLimit" in spec["jobTemplate"]["spec"], f"{name_of(cronjob)}: no backoffLimit")
            c.check(spec.get("timeZone") in (None, "Etc/UTC", "UTC"),
                    f"{name_of(cronjob)}: timeZone {spec.get('timeZone')} is not UTC, unlike Palisade's schedules")
            for container in pspec["containers"]:
                argv = (container.get("command") or []) + (container.get("args") or [])
                match = (len(argv) >= 5 and argv[0] == "jobs" and argv[1] == "run"
                         and argv[3:5] == ["--config", CONFIG_PATH])
                if c.check(match, f"{name_of(cronjob)}: runs {argv}, not `jobs run NAME --config {CONFIG_PATH}`"):
                    job = argv[2]
                    c.check(job in jobs, f"{name_of(cronjob)}: job {job!r} is not in the config's [jobs]")
                    c.check(jobs.get(job, {}).get("runner") == "cronjob",
                            f"{name_of(cronjob)}: job {job!r} does not have runner = \"cronjob\" (the gateway would run it too)")
                    c.check(spec.get("schedule") == jobs.get(job, {}).get("schedule"),
                            f"{name_of(cronjob)}: schedule differs from the config's")
                    timeout = seconds(jobs.get(job, {}).get("timeout", "30m"))
                    deadline = spec["jobTemplate"]["spec"].get("activeDeadlineSeconds") or 0
                    c.check(deadline > timeout, f"{name_of(cronjob)}: activeDeadlineSeconds {deadline} is not above "
                                                f"the job's timeout ({timeout}s), so Kubernetes would kill it mid-batch")
                c.check(any(m["mountPath"] == os.path.dirname(CONFIG_PATH) for m in container.get("volumeMounts") or []),
                        f"{name_of(cronjob)}: the config is not mounted at {os.path.dirname(CONFIG_PATH)}")
        cron_jobs = {argv[2] for cj in by_kind.get("CronJob", [])
                     for ct in pod_spec(cj)["containers"]
                     for argv in [(ct.get("command") or []) + (ct.get("args") or [])] if len(argv) > 2}
        for name, job in jobs.items():
            if job.get("runner") == "cronjob":
                c.check(name in cron_jobs, f"job {name!r} has runner = \"cronjob\" but no CronJob runs it")

        services = by_kind.get("Service", [])
        service_ports = {p.get("name") for s in services for p in s["spec"]["ports"]}
        for sm in by_kind.get("ServiceMonitor", []):
            for endpoint in sm["spec"]["endpoints"]:
                c.check(endpoint.get("port") in service_ports, f"{name_of(sm)}: port {endpoint.get('port')!r} is no Service port")
                c.check(endpoint.get("path") == "/metrics", f"{name_of(sm)}: path is not /metrics")
        for rule in by_kind.get("PrometheusRule", []):
            rendered = yaml.safe_dump(rule["spec"]["groups"], sort_keys=True, width=10**6)
            expected = yaml.safe_dump(alert_groups, sort_keys=True, width=10**6)
            # Equal but for the runbook base URL, which prometheusRule.runbookBaseUrl may
            # replace: one base throughout, in place of every occurrence of the default.
            parts = [re.escape(part) for part in expected.split(DEFAULT_RUNBOOK_BASE)]
            pattern = parts[0]
            for index, part in enumerate(parts[1:]):
                pattern += (r"(?P<base>https?://[^\s'\"]*/)" if index == 0 else "(?P=base)") + part
            c.check(re.fullmatch(pattern, rendered) is not None, f"{name_of(rule)}: groups differ from {args.alerts}")
        policies = by_kind.get("NetworkPolicy", [])
        for policy in policies:
            ops_rules = [r for r in policy["spec"].get("ingress") or [] if any(p.get("port") == "ops" for p in r.get("ports", []))]
            c.check(all(r.get("from") for r in ops_rules), f"{name_of(policy)}: the ops port is open to every source")
        if policies:
            # Every workload rendered next to a NetworkPolicy is selected by one.
            for obj in by_kind.get("Deployment", []) + by_kind.get("CronJob", []):
                template = obj["spec"]["template"] if obj["kind"] == "Deployment" else obj["spec"]["jobTemplate"]["spec"]["template"]
                labels = template["metadata"].get("labels") or {}
                selected = any(all(labels.get(k) == v for k, v in (p["spec"]["podSelector"].get("matchLabels") or {}).items())
                               for p in policies)
                c.check(selected, f"{name_of(obj)}: no NetworkPolicy selects its Pods")

        status = "ok  " if not c.failures else "FAIL"
        print(f"  {status} {c.passed} checks passed, {len(c.failures)} failed")
        total_failures += len(c.failures)
    return 1 if total_failures else 0


def crds(args):
    from cloudcoil.models.prometheus_operator import v1

    failures = 0
    for path in args.files:
        for obj in load(path):
            if obj.get("apiVersion") != "monitoring.coreos.com/v1":
                continue
            model = getattr(v1, obj["kind"], None)
            where = f"{os.path.basename(path)} {name_of(obj)}"
            if model is None:
                print(f"  FAIL {where}: no monitoring.coreos.com/v1 model for this kind")
                failures += 1
                continue
            try:
                parsed = model.model_validate(obj)
            except Exception as error:  # pydantic.ValidationError, with every field named
                print(f"  FAIL {where}: {error}")
                failures += 1
                continue
            dumped = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
            if dumped != obj:
                print(f"  FAIL {where}: fields unknown to the CRD or changed by its types:\n"
                      f"    rendered: {obj}\n    as the CRD reads it: {dumped}")
                failures += 1
            else:
                print(f"  ok   {where} matches the {obj['kind']} CRD schema (strict)")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("manifests")
    m.add_argument("--palisade", required=True)
    m.add_argument("--alerts", default="deploy/prometheus/alerts.yaml")
    m.add_argument("files", nargs="+")
    c = sub.add_parser("crds")
    c.add_argument("files", nargs="+")
    args = parser.parse_args()
    return manifests(args) if args.command == "manifests" else crds(args)


if __name__ == "__main__":
    sys.exit(main())
