"""Check the Kubernetes manifests against the exporter, its image and its rules, offline."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from exporter import __version__
from exporter.cli import DEFAULT_PORT, parse_listen_address
from exporter.config import parse_config
from scripts.render_k8s_rules import OUTPUT_FILE, RULES_FILE, RenderError, main, render

ROOT = Path(__file__).resolve().parent.parent
K8S_DIR = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"
SECRET_TEMPLATE = K8S_DIR / "secret.example.yaml"
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_NAME = "bcc-image-exporter"
OPERATOR_API = "monitoring.coreos.com/v1"
SCRAPE_INTERVAL = "1m"
SCRAPE_TIMEOUT = "30s"
# Volume types allowed by the `restricted` Pod Security Standard that the pod uses.
RESTRICTED_VOLUME_TYPES = {"configMap", "secret", "emptyDir", "projected"}
_UNITS = {"m": 1e-3, "": 1.0, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
_JOB_MATCHER = re.compile(r'\bjob="([^"]+)"')

Manifest = dict[str, Any]


def manifest_files() -> list[Path]:
    """Return every YAML file of the directory but the kustomization."""
    return sorted(path for path in K8S_DIR.glob("*.yaml") if path != KUSTOMIZATION)


def documents(path: Path) -> list[Manifest]:
    """Return the YAML documents of a file, empty ones left out."""
    loaded = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [cast(Manifest, document) for document in loaded if document is not None]


def manifest(kind: str) -> Manifest:
    """Return the one object of this kind in the directory, the Secret template included."""
    found = [doc for path in manifest_files() for doc in documents(path) if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec() -> Manifest:
    """Return the Deployment's pod spec."""
    return cast(Manifest, manifest("Deployment")["spec"]["template"]["spec"])


def container() -> Manifest:
    """Return the Deployment's only container."""
    (only,) = pod_spec()["containers"]
    return cast(Manifest, only)


def container_port(port: int | str) -> int:
    """Resolve a probe's or a Service's target port, by number or by name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container()["ports"] if p["name"] == port]
    return cast(int, number)


def mount_path(volume_kind: str) -> str:
    """Return where the container mounts the pod's volume of this kind."""
    (name,) = [volume["name"] for volume in pod_spec()["volumes"] if volume_kind in volume]
    (path,) = [m["mountPath"] for m in container()["volumeMounts"] if m["name"] == name]
    return cast(str, path)


def image_user() -> tuple[int, int]:
    """Return the UID and GID of the Dockerfile's last USER instruction."""
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert users, "the Dockerfile has no numeric USER uid:gid"
    uid, gid = users[-1]
    return int(uid), int(gid)


def quantity(value: str | int) -> float:
    """Turn a Kubernetes CPU or memory quantity such as 50m or 64Mi into a number."""
    match = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|)", str(value))
    assert match is not None, f"unsupported quantity {value!r}"
    return float(match[1]) * _UNITS[match[2]]


def configmap_config() -> str:
    """Return the config file text that the ConfigMap mounts at --config.file."""
    config_file = _arg("--config.file")
    directory, _, name = config_file.rpartition("/")
    assert directory == mount_path("configMap")
    return cast(str, manifest("ConfigMap")["data"][name])


def _arg(flag: str) -> str:
    values = [a.partition("=")[2] for a in container()["args"] if a.startswith(f"{flag}=")]
    assert len(values) == 1, f"expected {flag}=VALUE once in the container args"
    return cast(str, values[0])


def _probe(kind: str) -> Manifest:
    return cast(Manifest, container()[kind])


def test_every_manifest_parses_into_named_kubernetes_objects() -> None:
    for path in manifest_files():
        docs = documents(path)

        assert docs, f"{path.name} holds no object"
        for doc in docs:
            assert isinstance(doc, dict), path.name
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path.name
            assert doc["metadata"]["name"].startswith(IMAGE_NAME), path.name


def test_kustomization_lists_every_manifest_except_the_secret_template() -> None:
    resources = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))["resources"]

    assert sorted(resources) == sorted(p.name for p in manifest_files() if p != SECRET_TEMPLATE)


def test_committed_prometheusrule_is_what_the_generator_renders_now() -> None:
    expected = render(RULES_FILE.read_text(encoding="utf-8"))

    assert OUTPUT_FILE.read_text(encoding="utf-8") == expected, (
        "deploy/kubernetes/prometheusrule.yaml is out of date: run "
        "python scripts/render_k8s_rules.py"
    )


def test_prometheusrule_holds_exactly_the_groups_of_rules_yml() -> None:
    rule = manifest("PrometheusRule")
    rules = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))

    assert rule["apiVersion"] == OPERATOR_API
    assert rule["spec"] == rules


def test_generator_check_passes_now_and_a_rule_change_makes_the_file_stale(
    capsys: pytest.CaptureFixture[str],
) -> None:
    changed = RULES_FILE.read_text(encoding="utf-8").replace("for: 15m", "for: 20m", 1)

    assert main(["--check"]) == 0
    assert render(changed) != OUTPUT_FILE.read_text(encoding="utf-8")
    assert "up to date" in capsys.readouterr().out


@pytest.mark.parametrize(
    "rules_text",
    ["groups: []\n---\ngroups: []\n", "groups: []\nextra: 1\n", "# only a comment\n"],
)
def test_generator_refuses_rules_it_cannot_nest_under_spec(rules_text: str) -> None:
    with pytest.raises(RenderError):
        render(rules_text)


def test_image_tag_is_the_package_version() -> None:
    name, _, tag = container()["image"].rpartition(":")

    assert (name, tag) == (IMAGE_NAME, __version__)


def test_pod_runs_as_the_image_user_and_group() -> None:
    context = pod_spec()["securityContext"]

    assert context["runAsNonRoot"] is True
    assert (context["runAsUser"], context["runAsGroup"]) == image_user()


def test_container_drops_every_privilege() -> None:
    context = container()["securityContext"]

    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context.get("privileged", False) is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod_spec()["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_pod_uses_no_host_access_token_or_service_links() -> None:
    spec = pod_spec()

    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec)
    assert spec["automountServiceAccountToken"] is False
    # A Service named bcc-image-exporter would inject BCC_IMAGE_EXPORTER_* variables, the
    # prefix of the exporter's flag variables.
    assert spec["enableServiceLinks"] is False
    for volume in spec["volumes"]:
        assert set(volume) - {"name"} <= RESTRICTED_VOLUME_TYPES, volume


def test_args_read_the_mounted_config_and_listen_on_the_default_port() -> None:
    assert parse_listen_address(_arg("--web.listen-address")) == ("0.0.0.0", DEFAULT_PORT)
    assert configmap_config()


@pytest.mark.parametrize(
    ("probe", "path"),
    [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")],
)
def test_probe_requests_the_exporter_route_on_its_port(probe: str, path: str) -> None:
    get = _probe(probe)["httpGet"]

    assert get["path"] == path
    assert container_port(get["port"]) == DEFAULT_PORT


def test_startup_probe_gives_the_process_time_before_liveness_applies() -> None:
    startup = _probe("startupProbe")

    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30
    assert "initialDelaySeconds" not in _probe("livenessProbe")


def test_every_probe_answers_within_its_period() -> None:
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = _probe(kind)

        assert 0 < probe["timeoutSeconds"] <= probe["periodSeconds"], kind


def test_resources_have_requests_within_limits_for_cpu_and_memory() -> None:
    resources = container()["resources"]

    for name in ("cpu", "memory"):
        assert 0 < quantity(resources["requests"][name]) <= quantity(resources["limits"][name])
    assert quantity(resources["requests"]["memory"]) >= 64 * 2**20


def test_deployment_runs_one_replica_and_keeps_it_during_a_rollout() -> None:
    spec = manifest("Deployment")["spec"]

    assert spec["replicas"] == 1
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_deployment_selector_matches_its_pod_labels() -> None:
    deployment = manifest("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_service_selects_the_deployment_pods_and_reaches_the_metrics_port() -> None:
    service = manifest("Service")
    labels = manifest("Deployment")["spec"]["template"]["metadata"]["labels"]
    (port,) = service["spec"]["ports"]

    assert service["spec"]["selector"].items() <= labels.items()
    assert (port["name"], port["port"]) == ("metrics", DEFAULT_PORT)
    assert container_port(port["targetPort"]) == DEFAULT_PORT


def test_servicemonitor_selects_the_service_and_its_port_name() -> None:
    monitor = manifest("ServiceMonitor")
    service = manifest("Service")
    (endpoint,) = monitor["spec"]["endpoints"]
    selector = monitor["spec"]["selector"]["matchLabels"]

    assert monitor["apiVersion"] == OPERATOR_API
    assert selector.items() <= service["metadata"]["labels"].items()
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint.get("path", "/metrics") == "/metrics"
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == (SCRAPE_INTERVAL, SCRAPE_TIMEOUT)


def test_scrape_job_is_the_one_the_exporter_alerts_look_for() -> None:
    # Without jobLabel, the Prometheus Operator names the job after the Service.
    jobs = set(_JOB_MATCHER.findall(RULES_FILE.read_text(encoding="utf-8")))

    assert "jobLabel" not in manifest("ServiceMonitor")["spec"]
    assert jobs == {manifest("Service")["metadata"]["name"]}


def test_environment_comes_from_keys_of_the_credentials_secret() -> None:
    secret = manifest("Secret")

    for variable in container().get("env", []):
        reference = variable["valueFrom"]["secretKeyRef"]
        assert reference["name"] == secret["metadata"]["name"], variable["name"]
        assert reference["key"] in secret["stringData"], variable["name"]


def test_secret_is_mounted_as_a_directory_readable_by_the_pod_group() -> None:
    (volume,) = [v["secret"] for v in pod_spec()["volumes"] if "secret" in v]
    (mount,) = [m for m in container()["volumeMounts"] if m["mountPath"] == mount_path("secret")]

    assert volume["secretName"] == manifest("Secret")["metadata"]["name"]
    assert "subPath" not in mount  # a subPath mount is never updated when the Secret changes
    assert volume["defaultMode"] == 0o440
    assert pod_spec()["securityContext"]["fsGroup"] == image_user()[1]


def test_config_reads_both_keys_from_mounted_files_not_the_environment() -> None:
    (account,) = yaml.safe_load(configmap_config())["accounts"]
    secret_dir = mount_path("secret")
    keys = manifest("Secret")["stringData"]

    for name in ("access_key_id", "secret_access_key"):
        assert name not in account
        directory, _, key = account[f"{name}_file"].rpartition("/")
        assert (directory, key in keys) == (secret_dir, True)
    assert "env" not in container(), "no credential passes through the environment"


def test_config_uses_only_variables_the_deployment_sets() -> None:
    variables = set(_VARIABLE.findall(configmap_config()))

    assert variables <= {variable["name"] for variable in container().get("env", [])}


def test_configmap_config_loads_with_the_exporter_loader(tmp_path: Path) -> None:
    for key in manifest("Secret")["stringData"]:
        (tmp_path / key).write_text("dummy-value\n", encoding="utf-8")
    text = configmap_config().replace(mount_path("secret"), str(tmp_path))
    environ = {variable["name"]: "dummy-id" for variable in container().get("env", [])}

    config = parse_config(yaml.safe_load(text), base_dir=tmp_path, environ=environ)

    (account,) = config.accounts
    assert account.access_key_id.value == "dummy-value"
    assert account.secret_access_key.value == "dummy-value"
    assert account.secret_access_key.path == tmp_path / "secret_access_key"


def test_secret_file_is_reread_after_the_kubelet_swaps_the_secret(tmp_path: Path) -> None:
    # The kubelet's layout: key -> ..data/key, ..data -> a timestamped directory that is
    # replaced by renaming a new symlink over ..data.
    def publish(version: str, key_id: str, secret: str) -> None:
        (tmp_path / version).mkdir()
        (tmp_path / version / "access_key_id").write_text(key_id, encoding="utf-8")
        (tmp_path / version / "secret_access_key").write_text(secret, encoding="utf-8")
        os.symlink(version, tmp_path / "..data_tmp")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    publish("..2024_01_01_00_00_00.1", "first-id", "first-secret")
    for key in ("access_key_id", "secret_access_key"):
        os.symlink(f"..data/{key}", tmp_path / key)
    text = configmap_config().replace(mount_path("secret"), str(tmp_path))
    environ = {variable["name"]: "dummy-id" for variable in container().get("env", [])}
    (account,) = parse_config(yaml.safe_load(text), tmp_path, environ).accounts
    assert (account.access_key_id.value, account.secret_access_key.value) == (
        "first-id",
        "first-secret",
    )

    publish("..2024_02_01_00_00_00.2", "the-second-id", "the-second-secret")

    assert (account.access_key_id.value, account.secret_access_key.value) == (
        "the-second-id",
        "the-second-secret",
    )


@pytest.mark.parametrize("path", sorted(p.name for p in manifest_files()))
def test_core_objects_match_the_kubernetes_schema(path: str) -> None:
    import kubernetes_validate as validator

    for doc in documents(K8S_DIR / path):
        if doc["apiVersion"] == OPERATOR_API:
            continue  # custom resources: their schema ships with the operator, not here
        validator.validate(doc, validator.latest_version(), strict=True)
