"""A fake Kubernetes cluster for tests: kmock's API emulator plus a kubelet that runs pods here.

`LocalCluster` serves kmock's in-memory Kubernetes API (``KubernetesEmulator``: pods are created, read,
listed and deleted over real HTTP by the real ``kubernetes`` client) on a local port from a background
thread. Each created pod's first container runs as a local subprocess, like `aws_fakes.LocalBatchClient`
does for Batch: its command (``python`` is this virtualenv's), the pod's environment (so the Dagster Pipes
context really arrives through ``DAGSTER_PIPES_CONTEXT``), and its output becomes the pod log served at
``/api/v1/namespaces/<ns>/pods/<name>/log`` (``follow``, ``timestamps``, ``tailLines``). Container statuses
go from ``ContainerCreating`` to ``running`` to ``terminated`` with the real exit code. Deleting a pod
kills its process. What the emulator lacks for dagster-k8s (field and label selectors on list) is added.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PODS = kmock.resource("v1/pods")


def _stamp(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


@dataclass
class LocalPod:
    """One pod's container run here."""

    namespace: str
    name: str
    body: dict[str, Any]
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    lines: list[tuple[str, str]] = field(default_factory=list)  # (RFC 3339 stamp, line)
    pid: int | None = None
    exit_code: int | None = None
    finished: bool = False
    deleted: bool = False
    frozen: bool = False


class LocalCluster:
    """kmock's Kubernetes API on a local port plus a kubelet running pods as local processes.

    Args:
        freeze_after_first_message: stop (SIGSTOP) a container after its first Pipes message, as if it
            were busy for a long time; it stays "running" until its pod is deleted.
        base_env: environment every container starts from (the image's environment).
    """

    def __init__(self, *, freeze_after_first_message: bool = False, base_env: dict[str, str] | None = None):
        self.freeze_after_first_message = freeze_after_first_message
        self.base_env = (
            base_env if base_env is not None else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        )
        self.pods: dict[tuple[str, str], LocalPod] = {}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.log_requests = 0
        self.url = ""
        self._emulator: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="kmock", daemon=True)
        self._last_ns = 0

    # --- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("kmock did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        for pod in list(self.pods.values()):
            self._kill(pod)
        self._stop.set()
        self._thread.join(30)

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig for the real ``kubernetes`` client pointing at this cluster."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "fake"}}],
            "contexts": [
                {"name": "local", "context": {"cluster": "local", "user": "tester", "namespace": namespace}}
            ],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def thaw(self) -> None:
        """Let frozen containers go on (SIGCONT) and freeze no more."""
        self.freeze_after_first_message = False
        for pod in list(self.pods.values()):
            if pod.frozen and pod.pid is not None and not pod.finished:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pod.pid, signal.SIGCONT)

    def wait_for(self, predicate: Any, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    # --- the API server --------------------------------------------------------------------------
    async def _serve(self) -> None:
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            self._emulator, self._loop = emulator, asyncio.get_running_loop()
            self.url = str(server.url).rstrip("/")
            emulator.resources["v1/pods"] = kmock.ResourceInfo(kind="Pod", namespaced=True)
            # Side effects that then let the emulator answer (NotImplementedError: "matched, answer
            # elsewhere"; a plain sink would be disabled by kmock after its first request).
            emulator[kmock.action.CREATE, PODS] << self._on_create
            emulator[kmock.action.DELETE, PODS] << self._on_delete
            emulator[kmock.action.LIST, PODS] << self._list
            emulator["get", PODS, kmock.subresource("log")] << self._log
            self._ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.05)

    def _current(self, pod: LocalPod) -> dict[str, Any]:
        return self._emulator.objects[PODS, pod.namespace, pod.name].raw

    def _list(self, request: Any) -> dict[str, Any]:
        """Pods of the namespace, filtered by ``metadata.name=`` field and ``k=v`` label selectors."""
        fields = dict(
            s.split("=", 1) for s in (request.params.get("fieldSelector") or "").split(",") if "=" in s
        )
        labels = dict(
            s.split("=", 1) for s in (request.params.get("labelSelector") or "").split(",") if "=" in s
        )
        items = []
        for pod in self.pods.values():
            if pod.deleted or (request.namespace and pod.namespace != request.namespace):
                continue
            body = self._current(pod)
            meta = body.get("metadata") or {}
            if fields.get("metadata.name", pod.name) != pod.name:
                continue
            if any((meta.get("labels") or {}).get(k) != v for k, v in labels.items()):
                continue
            items.append(body)
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items}

    def _on_create(self, request: Any) -> Any:
        body = request.data
        namespace = request.namespace or body.get("metadata", {}).get("namespace") or "default"
        pod = LocalPod(namespace=namespace, name=body["metadata"]["name"], body=body)
        self.pods[(namespace, pod.name)] = pod
        self.created.append(body)
        asyncio.get_running_loop().create_task(self._kubelet(pod))
        raise NotImplementedError  # the emulator stores and returns the pod

    def _on_delete(self, request: Any) -> Any:
        pod = self.pods.get((request.namespace, request.name))
        if pod is not None:
            pod.deleted = True
            self.deleted.append(pod.name)
            self._kill(pod)
        raise NotImplementedError  # the emulator deletes the pod

    async def _log(self, request: Any) -> Any:
        pod = self.pods.get((request.namespace, request.name))
        if pod is None:
            raise kmock.KubernetesObjectNotFoundError()
        self.log_requests += 1
        follow = str(request.params.get("follow")).lower() == "true"  # the Python client sends "True"
        timestamps = str(request.params.get("timestamps")).lower() == "true"
        tail = request.params.get("tailLines")

        async def lines() -> Any:
            yield b""  # start the response even before the first line
            i = max(0, len(pod.lines) - int(tail)) if tail else 0
            while True:
                while i < len(pod.lines):
                    stamp, line = pod.lines[i]
                    yield (f"{stamp} {line}\n" if timestamps else f"{line}\n").encode()
                    i += 1
                if not follow or pod.finished or pod.deleted:
                    return
                await asyncio.sleep(0.05)

        return lines()

    # --- the kubelet -------------------------------------------------------------------------------
    def _status(self, pod: LocalPod, phase: str, state: dict[str, Any], ready: bool) -> None:
        if pod.deleted:
            return
        container = pod.body["spec"]["containers"][0]
        status = {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        }
        self._emulator.objects[PODS, pod.namespace, pod.name].patch({"status": status})

    def _now(self) -> str:
        self._last_ns = max(
            time.time_ns(), self._last_ns + 1
        )  # distinct stamps: dagster-k8s joins equal ones
        return _stamp(self._last_ns)

    async def _kubelet(self, pod: LocalPod) -> None:
        container = pod.body["spec"]["containers"][0]
        self._status(pod, "Pending", {"waiting": {"reason": "ContainerCreating"}}, ready=False)
        command = [*container.get("command", []), *container.get("args", [])]
        if command and command[0] == "python":  # the image's python is this virtualenv's
            command[0] = sys.executable
        pod.command = command
        pod.env = {**self.base_env, **{e["name"]: e.get("value", "") for e in container.get("env") or []}}
        process = await asyncio.create_subprocess_exec(
            *command,
            env=pod.env,
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        pod.pid = process.pid
        started = self._now()
        self._status(pod, "Running", {"running": {"startedAt": started}}, ready=True)
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            pod.lines.append((self._now(), line))
            if self.freeze_after_first_message and not pod.frozen and line.startswith('{"__dagster_pipes'):
                pod.frozen = True
                os.killpg(process.pid, signal.SIGSTOP)
        pod.exit_code = await process.wait()
        pod.finished = True
        terminated = {
            "exitCode": pod.exit_code,
            "reason": "Completed" if pod.exit_code == 0 else "Error",
            "message": pod.lines[-1][1][-200:] if pod.exit_code and pod.lines else None,
            "startedAt": started,
            "finishedAt": self._now(),
        }
        phase = "Succeeded" if pod.exit_code == 0 else "Failed"
        self._status(pod, phase, {"terminated": terminated}, ready=False)

    def _kill(self, pod: LocalPod) -> None:
        if pod.pid is None or pod.finished:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pod.pid, signal.SIGKILL)
