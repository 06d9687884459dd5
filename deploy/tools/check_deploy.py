#!/usr/bin/env python3
"""Cross-file checks of the deployment files that no schema can make.

Run by scripts/check-deploy.sh (which renders the kustomizations first):

    check_deploy.py [-v] ROOT RENDERED_BASE.yaml RENDERED_GPU.yaml

ROOT is the repository root. Schemas (compose-spec, Kubernetes OpenAPI) say whether each file
is well formed; this says whether the files agree with each other and with the binary's
interface: ports, probe paths, mounts, topics, the pipeline file's keys, the user id, the
partition bound on replicas, the retraining job's exit codes. Prints the failed checks (-v:
every check) and a count; exits 1 if any failed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib  # Python >= 3.11
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

import yaml

RESULTS: list[tuple[bool, str]] = []


def check(ok: bool, what: str) -> bool:
    RESULTS.append((bool(ok), what))
    return bool(ok)


# --- YAML with duplicate keys rejected (PyYAML keeps the last one silently) -------------------


class UniqueKeyLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set = set()
    for key_node, _ in node.value:  # the keys written here; `<<` merges may be overridden
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def load_yaml_all(path: Path) -> list:
    with path.open() as f:
        return [d for d in yaml.load_all(f, Loader=UniqueKeyLoader) if d is not None]


# --- helpers ----------------------------------------------------------------------------------


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def dockerfile_final_stage(text: str) -> list[str]:
    """Instructions of the last stage, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    last_from = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    return lines[last_from:]


def instr(stage: list[str], name: str) -> list[str]:
    return [ln[len(name) + 1 :].strip() for ln in stage if ln.upper().startswith(name + " ")]


def known_pipeline_keys(root: Path) -> tuple[set[tuple[str, str]], set[str]]:
    """(section, key) pairs used in pipelines/*.toml, and field names of the config structs."""
    pairs: set[tuple[str, str]] = set()
    for toml_file in sorted((root / "pipelines").glob("*.toml")):
        data = tomllib.loads(toml_file.read_text())
        for section, table in data.items():
            if isinstance(table, dict):
                pairs.update((section, k) for k in table)
    fields: set[str] = set()
    config_rs = root / "crates" / "linewatch-runtime" / "src" / "config.rs"
    if config_rs.exists():
        fields = set(re.findall(r"^\s*pub\s+([a-z_][a-z0-9_]*)\s*:", config_rs.read_text(), re.M))
    return pairs, fields


def env_key_known(var: str, pairs: set[tuple[str, str]], fields: set[str]) -> bool:
    if var == "LINEWATCH_BROKERS":
        return True
    parts = var[len("LINEWATCH__") :].lower().split("__")
    if len(parts) == 3 and parts[:2] == ["kafka", "properties"]:
        return bool(parts[2])  # passed through to librdkafka
    if len(parts) != 2:
        return False
    return tuple(parts) in pairs or parts[1] in fields


def env_list_to_dict(env) -> dict[str, str]:
    if isinstance(env, dict):
        return {k: str(v) for k, v in env.items()}
    out = {}
    for item in env or []:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def under(path: str, mounts: list[str]) -> bool:
    p = path.rstrip("/") + "/"
    return any(p.startswith(m.rstrip("/") + "/") for m in mounts)


# sink.out / retrain.models_dir: an object-store URL (crates/linewatch-sink/src/location.rs)
OBJECT_URL = re.compile(r"(s3|s3a|gs|az|abfs|abfss)://[^/\s]+/[^\s]*[^/\s]")


def storage_ok(location: str | None, writable: list[str]) -> bool:
    """An object-store URL with a bucket and a prefix, or a path on a writable volume."""
    if not location:
        return False
    if OBJECT_URL.fullmatch(location):
        return True
    if location.startswith("file://"):
        location = location[len("file://") :]
    return location.startswith("/") and under(location, writable)


def expand(arg: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion of command and args (unknown variables stay as written)."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


# --- Dockerfiles ------------------------------------------------------------------------------


def check_dockerfiles(root: Path) -> dict:
    facts: dict = {}
    for name, features in (("Dockerfile", None), ("Dockerfile.cuda", "cuda")):
        path = root / "deploy" / name
        if not check(path.exists(), f"deploy/{name} exists"):
            continue
        text = path.read_text()
        stage = dockerfile_final_stage(text)
        user = instr(stage, "USER")
        check(user and user[-1].split(":")[0] == "10001", f"{name}: runtime USER is uid 10001")
        facts.setdefault("uid", user[-1].split(":")[0] if user else None)
        expose = instr(stage, "EXPOSE")
        check("9898" in " ".join(expose).split(), f"{name}: EXPOSE 9898")
        facts.setdefault("port", " ".join(expose).split()[0] if expose else None)
        check(instr(stage, "ENTRYPOINT") == ['["linewatch"]'], f'{name}: ENTRYPOINT ["linewatch"]')
        check(
            instr(stage, "CMD") == ['["run", "--pipeline", "/etc/linewatch/pipeline.toml"]'],
            f"{name}: CMD run --pipeline /etc/linewatch/pipeline.toml",
        )
        runs = " ".join(instr(stage, "RUN"))
        for pkg in ("libssl3", "ca-certificates", "zlib1g"):
            check(re.search(rf"\b{re.escape(pkg)}\b", runs), f"{name}: runtime stage installs {pkg}")
        check("--mount=type=cache" in text, f"{name}: BuildKit cache mounts for cargo")
        check(
            re.search(r"cargo build --release --locked -p linewatch", text),
            f"{name}: builds `cargo build --release --locked -p linewatch`",
        )
        check(
            "/etc/linewatch" in runs and "/data" in runs,
            f"{name}: creates /etc/linewatch and /data for the non-root user",
        )
        if features:
            check("--features cuda" in text, f"{name}: builds with --features cuda")
            froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
            check(
                len(froms) == 2
                and froms[0] == "nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU}"
                and froms[1] == "nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}",
                f"{name}: devel and runtime images of the same CUDA_VERSION/UBUNTU",
            )
            check("CUDA_COMPUTE_CAP" in text, f"{name}: sets CUDA_COMPUTE_CAP (no GPU at build time)")
        else:
            m = re.search(r"^ARG RUST_IMAGE=rust:(\S+)", text, re.M)
            check(m and m.group(1).startswith("1.95"), f"{name}: builder is rust:1.95")
            m = re.search(r"^ARG RUNTIME_IMAGE=(\S+)", text, re.M)
            check(m and m.group(1) == "debian:bookworm-slim", f"{name}: runtime is debian:bookworm-slim")
            check(
                "bookworm" in (re.search(r"^ARG RUST_IMAGE=(\S+)", text, re.M) or [""])[0],
                f"{name}: builder and runtime share Debian bookworm (same glibc)",
            )
    dockerignore = root / ".dockerignore"
    if check(dockerignore.exists(), ".dockerignore exists"):
        ignored = dockerignore.read_text().split()
        check(any(x.strip("/") == "target" for x in ignored), ".dockerignore: target/ stays out of the context")
    return facts


# --- docker-compose.yml -----------------------------------------------------------------------


def check_compose(root: Path, docker: dict) -> dict:
    facts: dict = {}
    (compose,) = load_yaml_all(root / "docker-compose.yml")
    services = compose.get("services", {})
    for name in ("kafka", "topics", "simulate", "run"):
        check(name in services, f"compose: service {name}")
    kafka = services.get("kafka", {})
    check(re.fullmatch(r"apache/kafka:3\.9\.\d+", kafka.get("image", "")), "compose: kafka is apache/kafka:3.9.x")
    env = env_list_to_dict(kafka.get("environment"))
    for key in (
        "CLUSTER_ID",
        "KAFKA_NODE_ID",
        "KAFKA_PROCESS_ROLES",
        "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_INTER_BROKER_LISTENER_NAME",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        check(env.get(key, "") != "", f"compose: kafka sets {key}")
    check(
        set(env.get("KAFKA_PROCESS_ROLES", "").split(",")) == {"broker", "controller"},
        "compose: kafka is broker and controller (KRaft, one node)",
    )
    check(
        re.fullmatch(r"[A-Za-z0-9_-]{22}", env.get("CLUSTER_ID", "")),
        "compose: CLUSTER_ID is a base64 UUID (22 characters)",
    )
    listeners = dict(
        (l.split("://")[0], l.split("://")[1]) for l in env.get("KAFKA_LISTENERS", "").split(",") if "://" in l
    )
    advertised = dict(
        (l.split("://")[0], l.split("://")[1])
        for l in env.get("KAFKA_ADVERTISED_LISTENERS", "").split(",")
        if "://" in l
    )
    proto = dict(p.split(":") for p in env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",") if ":" in p)
    check(set(listeners) <= set(proto), "compose: every listener has a security protocol")
    ctrl = env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "")
    check(ctrl in listeners and ctrl not in advertised, "compose: controller listener is listened on, not advertised")
    voters = env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")
    m = re.fullmatch(r"(\d+)@([^:]+):(\d+)", voters)
    check(
        m and m.group(1) == str(env.get("KAFKA_NODE_ID")) and m.group(3) == listeners.get(ctrl, ":").split(":")[-1],
        "compose: quorum voter is this node on the controller port",
    )
    check(env.get("KAFKA_INTER_BROKER_LISTENER_NAME") in advertised, "compose: inter-broker listener is advertised")
    check("kafka:9092" in advertised.values(), "compose: advertises kafka:9092 to containers")
    host_listener = [n for n, a in advertised.items() if a == "localhost:9094"]
    check(host_listener, "compose: advertises localhost:9094 to the host")
    published = [str(p) for p in kafka.get("ports", [])]
    check(any(p.endswith("9094:9094") for p in published), "compose: kafka publishes 9094 on the host")
    check(
        all(str(env.get(k)) == "1" for k in (
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        )),
        "compose: internal topics have replication factor 1 (one broker)",
    )
    check("healthcheck" in kafka and kafka["healthcheck"].get("test"), "compose: kafka has a healthcheck")

    # topics: "name:partitions" pairs in the one-shot script
    topics_svc = services.get("topics", {})
    script = " ".join(str(c) for c in (topics_svc.get("command") or []))
    loop = re.search(r"for spec in ([^;]*);", script)
    specs = dict(s.split(":") for s in (loop.group(1).split() if loop else []) if ":" in s)
    facts["partitions"] = {k: int(v) for k, v in specs.items()}
    check("kafka-topics.sh" in script and "--create" in script, "compose: topics service runs kafka-topics.sh --create")
    check(
        topics_svc.get("depends_on", {}).get("kafka", {}).get("condition") == "service_healthy",
        "compose: topics waits for kafka to be healthy",
    )

    for name in ("simulate", "run"):
        svc = services.get(name, {})
        build = svc.get("build", {})
        check(
            build.get("dockerfile") == "deploy/Dockerfile" and (root / build.get("context", "-") / "deploy/Dockerfile").exists(),
            f"compose: {name} is built from deploy/Dockerfile",
        )
        dep = svc.get("depends_on", {})
        check(
            dep.get("kafka", {}).get("condition") == "service_healthy"
            and dep.get("topics", {}).get("condition") == "service_completed_successfully",
            f"compose: {name} waits for kafka healthy and topics completed",
        )
        senv = env_list_to_dict(svc.get("environment"))
        check(senv.get("LINEWATCH_BROKERS") == "kafka:9092", f"compose: {name} uses brokers kafka:9092")
        # ${VAR:-default} -> default, before splitting on ':'
        mounts = [re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for v in svc.get("volumes", [])]
        pipeline_mounts = [v for v in mounts if v.split(":")[1:2] == ["/etc/linewatch/pipeline.toml"]]
        ok = len(pipeline_mounts) == 1 and pipeline_mounts[0].endswith(":ro")
        if ok:
            src = pipeline_mounts[0].split(":")[0]
            ok = (root / src).is_file()
            facts.setdefault("compose_pipeline", root / src)
        check(ok, f"compose: {name} mounts an existing ./pipelines file read-only at /etc/linewatch/pipeline.toml")
        cmd = svc.get("command") or []
        check(cmd[:3] == [name, "--pipeline", "/etc/linewatch/pipeline.toml"], f"compose: {name} command is `{name} --pipeline ...`")
        for var in senv:
            if var.startswith("LINEWATCH"):
                facts.setdefault("env_vars", set()).add(var)
    simulate = services.get("simulate", {})
    check(simulate.get("healthcheck", {}).get("disable") is True, "compose: simulate turns the image's HTTP healthcheck off")

    run = services.get("run", {})
    renv = env_list_to_dict(run.get("environment"))
    listen = renv.get("LINEWATCH__HTTP__LISTEN", "")
    check(listen.startswith("0.0.0.0:"), "compose: run listens on 0.0.0.0 (reachable from outside the container)")
    check(
        listen and any(str(p).split(":")[-1] == str(port_of(listen)) for p in run.get("ports", [])),
        "compose: run publishes its HTTP port",
    )
    check(listen and str(port_of(listen)) == "9898" == docker.get("port", "9898"), "compose: run's HTTP port is 9898 (EXPOSE)")
    vols = [re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for v in run.get("volumes", [])]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in vols}
    named = set((compose.get("volumes") or {}).keys())
    out, models = renv.get("LINEWATCH__SINK__OUT", ""), renv.get("LINEWATCH__RETRAIN__MODELS_DIR", "")
    check(mounts.get(out) in named, f"compose: run's sink.out ({out}) is a named volume")
    check(mounts.get(models) in named, f"compose: run's retrain.models_dir ({models}) is a named volume")
    grace = str(run.get("stop_grace_period", "10s"))
    check(re.fullmatch(r"(\d+)s", grace) and int(grace[:-1]) >= 30, "compose: run gets >= 30s to shut down on SIGTERM")
    facts["compose"] = compose
    return facts


# --- the pipeline file(s) ---------------------------------------------------------------------


def check_pipeline_topics(cfg: dict, partitions: dict, label: str) -> None:
    kafka = cfg.get("kafka", {})
    suffix = kafka.get("dlq_suffix", ".dlq")
    wanted = [
        kafka.get("readings_topic", "readings"),
        kafka.get("inspections_topic", "inspections"),
        kafka.get("alerts_topic", "alerts"),
    ]
    wanted += [wanted[0] + suffix, wanted[1] + suffix]
    missing = [t for t in wanted if t not in partitions]
    check(not missing, f"{label}: compose creates its topics {wanted}" + (f" (missing {missing})" if missing else ""))


# --- Kubernetes -------------------------------------------------------------------------------


def by_kind(docs: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for d in docs:
        out.setdefault(d.get("kind"), []).append(d)
    return out


def resolve_port(port, container: dict):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_pod(pod: dict, label: str, objs: dict, uid: str | None, cfg_by_cm: dict, pairs, fields) -> dict:
    """Checks one pod spec; returns the effective pipeline config (file + env overrides) and,
    under the key "__env__", the container's environment as far as the manifests fix it."""
    sc = pod.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True, f"{label}: runAsNonRoot")
    check(uid is None or str(sc.get("runAsUser")) == uid, f"{label}: runAsUser is the image's uid {uid}")
    check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{label}: seccomp RuntimeDefault")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace >= 30, f"{label}: terminationGracePeriodSeconds >= 30 (SIGTERM flushes and commits)")
    sa = pod.get("serviceAccountName")
    sas = {s["metadata"]["name"] for s in objs.get("ServiceAccount", [])}
    check(sa is None or sa in sas, f"{label}: serviceAccountName {sa} names an existing ServiceAccount")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    cms = {c["metadata"]["name"]: c for c in objs.get("ConfigMap", [])}
    pvcs = {c["metadata"]["name"] for c in objs.get("PersistentVolumeClaim", [])}
    effective: dict = {}
    for v in volumes.values():
        if "configMap" in v:
            cm = cms.get(v["configMap"]["name"])
            ok = cm is not None and all(i["key"] in cm.get("data", {}) for i in v["configMap"].get("items", []))
            check(ok, f"{label}: volume {v['name']} names an existing ConfigMap and key")
        if "persistentVolumeClaim" in v:
            check(v["persistentVolumeClaim"]["claimName"] in pvcs, f"{label}: volume {v['name']} names an existing PVC")
    for c in pod.get("containers", []):
        cl = f"{label}/{c['name']}"
        image = c.get("image", "")
        check(re.search(r":[^/]+$", image) and not image.endswith(":latest"), f"{cl}: image {image} has a tag (not latest)")
        csc = c.get("securityContext", {})
        check(csc.get("readOnlyRootFilesystem") is True, f"{cl}: readOnlyRootFilesystem")
        check(csc.get("allowPrivilegeEscalation") is False, f"{cl}: allowPrivilegeEscalation false")
        check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{cl}: drops all capabilities")
        mounts = c.get("volumeMounts", [])
        check(all(m["name"] in volumes for m in mounts), f"{cl}: every volumeMount names a volume")
        writable = [m["mountPath"] for m in mounts if not m.get("readOnly")]
        check("/tmp" in writable, f"{cl}: /tmp is writable (read-only root filesystem)")
        check(c.get("resources", {}).get("requests") and c["resources"].get("limits", {}).get("memory"),
              f"{cl}: resource requests and a memory limit")
        # the pipeline file the container reads, and where it writes
        args = c.get("args", [])
        pipeline_path = args[args.index("--pipeline") + 1] if "--pipeline" in args else None
        cfg = None
        for m in mounts:
            if pipeline_path and pipeline_path.startswith(m["mountPath"].rstrip("/") + "/"):
                vol = volumes.get(m["name"], {})
                rel = pipeline_path[len(m["mountPath"].rstrip("/")) + 1 :]
                if "configMap" in vol:
                    items = {i["path"]: i["key"] for i in vol["configMap"].get("items", [])}
                    key = items.get(rel, rel)
                    cfg = cfg_by_cm.get((vol["configMap"]["name"], key))
        check(cfg is not None, f"{cl}: --pipeline {pipeline_path} is a ConfigMap key that parses as TOML")
        cfg = dict(cfg or {})
        # the environment: envFrom first, then env (env wins, as in the kubelet)
        values: dict[str, str] = {}
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                ref = src["configMapRef"]
                cm = cms.get(ref.get("name"))
                check(cm is not None or ref.get("optional") is True,
                      f"{cl}: envFrom ConfigMap {ref.get('name')} exists")
                for k, v in ((cm or {}).get("data") or {}).items():
                    values[src.get("prefix", "") + k] = str(v)
            if "secretRef" in src:
                ref = src["secretRef"]
                check(ref.get("optional") is True, f"{cl}: envFrom Secret {ref.get('name')} is optional")
        env = {e["name"]: e for e in c.get("env", [])}
        for name, e in env.items():
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                check(ref.get("optional") is True, f"{cl}: secret {ref.get('name')}/{ref.get('key')} is optional")
            cref = e.get("valueFrom", {}).get("configMapKeyRef")
            if cref:
                data = (cms.get(cref.get("name")) or {}).get("data") or {}
                check(cref.get("key") in data, f"{cl}: env {name} names an existing ConfigMap key")
                if cref.get("key") in data:
                    values[name] = str(data[cref["key"]])
            if "value" in e:
                values[name] = expand(str(e["value"]), values)
        for name, value in values.items():
            if name.startswith("LINEWATCH"):
                check(env_key_known(name, pairs, fields), f"{cl}: env {name} names a known pipeline key")
            if name.startswith("LINEWATCH__"):
                parts = name[len("LINEWATCH__") :].lower().split("__")
                if len(parts) == 2:
                    cfg.setdefault(parts[0], {})
                    cfg[parts[0]] = dict(cfg[parts[0]], **{parts[1]: value})
        for sect, key in (("sink", "out"), ("retrain", "models_dir")):
            path = cfg.get(sect, {}).get(key)
            check(storage_ok(path, writable),
                  f"{cl}: {sect}.{key} ({path}) is an object-store URL or on a writable volume")
        cfg["__env__"] = values
        effective = cfg
    return effective


def check_k8s(rendered: Path, label: str, uid, partitions: dict, pairs, fields, gpu: bool) -> None:
    docs = load_yaml_all(rendered)
    objs = by_kind(docs)
    for kind in ("Namespace", "ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "CronJob"):
        check(len(objs.get(kind, [])) == 1, f"{label}: one {kind}")
    cm_names = sorted(c["metadata"]["name"] for c in objs.get("ConfigMap", []))
    check(cm_names == ["linewatch-pipeline", "linewatch-storage"],
          f"{label}: ConfigMaps linewatch-pipeline and linewatch-storage ({cm_names})")
    # a PVC only with the rwx-volume component, and then used by both pods
    pvcs = {c["metadata"]["name"] for c in objs.get("PersistentVolumeClaim", [])}
    claimed = {
        v["persistentVolumeClaim"]["claimName"]
        for d in objs.get("Deployment", []) + objs.get("CronJob", [])
        for v in (d["spec"]["template"]["spec"] if d["kind"] == "Deployment"
                  else d["spec"]["jobTemplate"]["spec"]["template"]["spec"]).get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    check(pvcs == claimed, f"{label}: every PVC is mounted ({sorted(pvcs)} vs {sorted(claimed)})")
    ns = objs.get("Namespace", [{}])[0].get("metadata", {}).get("name")
    check(
        all(d["metadata"].get("namespace") == ns for d in docs if d["kind"] != "Namespace"),
        f"{label}: every object is in namespace {ns}",
    )
    cfg_by_cm = {}
    for cm in objs.get("ConfigMap", []):
        for key, text in cm.get("data", {}).items():
            if key.endswith(".toml"):
                try:
                    cfg_by_cm[(cm["metadata"]["name"], key)] = tomllib.loads(text)
                    ok = True
                except tomllib.TOMLDecodeError as e:
                    ok = False
                    print(f"  {cm['metadata']['name']}/{key}: {e}")
                check(ok, f"{label}: ConfigMap {cm['metadata']['name']} key {key} is valid TOML")
    for (cm_name, key), cfg in cfg_by_cm.items():
        unknown = [
            f"{s}.{k}" for s, t in cfg.items() if isinstance(t, dict) for k in t
            if (s, k) not in pairs and k not in fields
        ]
        check(not unknown, f"{label}: {cm_name}/{key} uses only known keys" + (f" (unknown {unknown})" if unknown else ""))
        check_pipeline_topics(cfg, partitions, f"{label}: {cm_name}/{key}")

    dep = objs.get("Deployment", [None])[0]
    if dep:
        pod = dep["spec"]["template"]["spec"]
        pod_labels = dep["spec"]["template"]["metadata"].get("labels", {})
        sel = dep["spec"]["selector"]["matchLabels"]
        check(all(pod_labels.get(k) == v for k, v in sel.items()), f"{label}: Deployment selector matches its pods")
        cfg = check_pod(pod, f"{label}: Deployment", objs, uid, cfg_by_cm, pairs, fields)
        dep_storage = (cfg.get("sink", {}).get("out"), cfg.get("retrain", {}).get("models_dir"))
        readings = cfg.get("kafka", {}).get("readings_topic", "readings")
        parts = partitions.get(readings)
        replicas = dep["spec"].get("replicas", 1)
        check(parts is not None and replicas <= parts,
              f"{label}: replicas {replicas} <= partitions of {readings} ({parts}, docker-compose.yml)")
        (c,) = pod["containers"]
        listen = str(cfg.get("http", {}).get("listen", "127.0.0.1:9898"))
        check(listen.startswith("0.0.0.0:"), f"{label}: http.listen {listen} is reachable by probes and Prometheus")
        http_port = port_of(listen)
        check(any(p.get("containerPort") == http_port for p in c.get("ports", [])),
              f"{label}: containerPort {http_port} is http.listen's port")
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            p = c.get(probe, {}).get("httpGet", {})
            check(p.get("path") == path and resolve_port(p.get("port"), c) == http_port,
                  f"{label}: {probe} GET {path} on port {http_port}")
        check(c.get("args", [])[:1] == ["run"], f"{label}: Deployment runs `linewatch run`")
        env = cfg.get("__env__", {})
        check(str(env.get("LINEWATCH__RETRAIN__ENABLED")).lower() == "false",
              f"{label}: replicas leave retraining to the CronJob (retrain.enabled=false)")
        svc = objs.get("Service", [None])[0]
        if svc:
            ssel = svc["spec"]["selector"]
            check(all(pod_labels.get(k) == v for k, v in ssel.items()), f"{label}: Service selects the pipeline pods")
            sp = svc["spec"]["ports"][0]
            check(resolve_port(sp.get("targetPort"), c) == http_port, f"{label}: Service targetPort is the HTTP port")
            ann = svc["metadata"].get("annotations", {})
            check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(http_port)
                  and ann.get("prometheus.io/path") == "/metrics", f"{label}: Service has Prometheus scrape annotations")
        pdb = objs.get("PodDisruptionBudget", [None])[0]
        if pdb:
            psel = pdb["spec"]["selector"]["matchLabels"]
            check(all(pod_labels.get(k) == v for k, v in psel.items()), f"{label}: PDB selects the pipeline pods")

    dep_storage = locals().get("dep_storage")
    cj = objs.get("CronJob", [None])[0]
    if cj:
        spec = cj["spec"]
        check(spec.get("concurrencyPolicy") == "Forbid", f"{label}: CronJob concurrencyPolicy Forbid")
        job = spec["jobTemplate"]["spec"]
        pod = job["template"]["spec"]
        cfg = check_pod(pod, f"{label}: CronJob", objs, uid, cfg_by_cm, pairs, fields)
        (c,) = pod["containers"]
        args = [expand(str(a), cfg.get("__env__", {})) for a in c.get("args", [])]
        check(args[:1] == ["train"], f"{label}: CronJob runs `linewatch train`")
        check(dep_storage is None
              or dep_storage == (cfg.get("sink", {}).get("out"), cfg.get("retrain", {}).get("models_dir")),
              f"{label}: the CronJob reads and writes where the Deployment does (sink.out, retrain.models_dir)")
        flag = lambda f: args[args.index(f) + 1] if f in args else None  # noqa: E731
        check(flag("--from") == cfg.get("sink", {}).get("out"), f"{label}: train --from is the pipeline's sink.out")
        check(flag("--models") == cfg.get("retrain", {}).get("models_dir"),
              f"{label}: train --models is the pipeline's retrain.models_dir")
        pfp = job.get("podFailurePolicy", {}).get("rules", [])
        check(not pfp or pod.get("restartPolicy") == "Never", f"{label}: podFailurePolicy with restartPolicy Never")
        handled = {}
        for r in pfp:
            oc = r.get("onExitCodes")
            if oc:
                check(oc.get("containerName") in (None, c["name"]), f"{label}: podFailurePolicy names container {c['name']}")
                if oc.get("operator") == "In":
                    for v in oc.get("values", []):
                        handled[v] = r["action"]
        check(handled.get(2) == "FailJob" and handled.get(3) == "FailJob",
              f"{label}: exit codes 2 and 3 end the Job without retries (Ignore would retry forever)")
        check(1 not in handled, f"{label}: exit code 1 is retried up to backoffLimit")
        m = re.fullmatch(r"\*/(\d+) \* \* \* \*", spec.get("schedule", ""))
        deadline = job.get("activeDeadlineSeconds")
        check(m and deadline and deadline < int(m.group(1)) * 60,
              f"{label}: activeDeadlineSeconds < the schedule's interval")
        limits = c.get("resources", {}).get("limits", {})
        if gpu:
            check(limits.get("nvidia.com/gpu") in (1, "1"), f"{label}: training pod asks for one nvidia.com/gpu")
            check(c["image"].split(":")[0].endswith("linewatch-cuda"), f"{label}: training uses the CUDA image")
        else:
            check("nvidia.com/gpu" not in limits, f"{label}: CPU training asks for no GPU")


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    args = [a for a in sys.argv[1:] if a not in ("-v", "--verbose")]
    verbose = len(args) < len(sys.argv) - 1
    root, base, gpu = Path(args[0]), Path(args[1]), Path(args[2])
    pairs, fields = known_pipeline_keys(root)
    check(bool(pairs), "pipelines/*.toml parse as TOML")
    docker = check_dockerfiles(root)
    compose = check_compose(root, docker)
    partitions = compose.get("partitions", {})
    if compose.get("compose_pipeline"):
        cfg = tomllib.loads(compose["compose_pipeline"].read_text())
        check_pipeline_topics(cfg, partitions, f"compose pipeline {compose['compose_pipeline'].name}")
    for var in sorted(compose.get("env_vars", set())):
        check(env_key_known(var, pairs, fields), f"compose: env {var} names a known pipeline key")
    check_k8s(base, "k8s", docker.get("uid"), partitions, pairs, fields, gpu=False)
    check_k8s(gpu, "k8s-gpu", docker.get("uid"), partitions, pairs, fields, gpu=True)

    failed = [w for ok, w in RESULTS if not ok]
    for ok, what in RESULTS:
        if verbose or not ok:
            print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    print(f"  {len(RESULTS) - len(failed)} of {len(RESULTS)} cross-file checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
