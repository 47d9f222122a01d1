"""`kubectl cronfleet`, the installed executable, against the real control plane.

Every command runs as a user would run it: the `kubectl-cronfleet` program
with a kubeconfig (the admin's, a ServiceAccount's token, an exec credential
plugin), once through `kubectl cronfleet` itself. Runs use `command` and
`sleep` tasks only.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from cronfleet.plugin.actions import allowed
from cronfleet.plugin.kubeconfig import load_session
from cronfleet_devcluster.kube import JOBS, SCHEDULES, Object, Resource
from cronfleet_devcluster.pki import issue_certificate, openssl
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_chart import ROLEBINDINGS, user_token
from tests.integration.test_runs import NEVER, attempt_script
from tests.integration.test_schedules import schedule, status_of, wait_phase

BIN = Path(sys.executable).parent
PLUGIN = BIN / "kubectl-cronfleet"
ZONE = ZoneInfo("Asia/Kolkata")
ROLES = Resource("rbac.authorization.k8s.io/v1", "roles")
# 02:30 in Kolkata (UTC+05:30) is 21:00 UTC.
NIGHTLY = {"cron": "30 2 * * *", "timeZone": "Asia/Kolkata"}
ECHO = {"task": "command", "params": {"argv": ["sh", "-c", "echo hello from $CRONFLEET_RUN"]}}
FAIL = {
    "task": "command",
    "params": {"argv": ["sh", "-c", "echo disk full >&2; exit 1"]},
    "retry": {"maxRetries": 0},
}


def cli(
    cluster: Cluster, *args: str, kubeconfig: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`kubectl-cronfleet --kubeconfig K ARGS…`, as installed by pip."""
    return subprocess.run(
        [str(PLUGIN), "--kubeconfig", str(kubeconfig or cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def create(cluster: Cluster, namespace: str, name: str, **spec: Any) -> Object:
    created = cluster.kube.create(SCHEDULES, schedule(name, **spec), namespace)
    wait_phase(cluster, namespace, name, "Active")
    return created


def annotations_of(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    found: dict[str, str] = (
        cluster.kube.get(SCHEDULES, name, namespace)["metadata"].get("annotations") or {}
    )
    return found


def user_kubeconfig(cluster: Cluster, path: Path, namespace: str, user: Object) -> Path:
    """The cluster's kubeconfig with another user, whose context names ``namespace``."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    cluster_name = config["clusters"][0]["name"]
    config["users"] = [{"name": "someone", "user": user}]
    config["contexts"] = [
        {
            "name": "someone",
            "context": {"cluster": cluster_name, "user": "someone", "namespace": namespace},
        }
    ]
    config["current-context"] = "someone"
    path.write_text(yaml.safe_dump(config))
    return path


def grant(cluster: Cluster, namespace: str, account: str, verbs: list[str]) -> None:
    """A Role over schedules (and the runs' Jobs, pods and logs to read) bound to ``account``."""
    rules = [
        {"apiGroups": ["cronfleet.io"], "resources": ["schedules"], "verbs": verbs},
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
    ]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role"}
    cluster.kube.create(ROLES, {**role, "metadata": {"name": account}, "rules": rules}, namespace)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": account},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    cluster.kube.create(ROLEBINDINGS, binding, namespace)


# -- reading -----------------------------------------------------------------------------


def test_list_next_and_stats_read_the_operators_words(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    create(cluster, namespace, "nightly", **NIGHTLY, **ECHO)
    create(cluster, namespace, "report", cron=NEVER, task="sleep", params={"seconds": 0})

    table = ok(cli(cluster, "list", "-n", namespace)).splitlines()
    assert table[0].split() == [
        "NAME",
        "SCHEDULE",
        "PHASE",
        "LAST",
        "RESULT",
        "SUCCESS",
        "NEXT",
        "RUN",
        "RETRIES",
    ]
    nightly = next(line for line in table if line.startswith("nightly "))
    assert "At 02:30 (Asia/Kolkata)" in nightly and "Active" in nightly
    assert nightly.split()[-1] == "0" and "<none>" in nightly
    # Every namespace: the namespace comes first.
    everywhere = ok(cli(cluster, "list", "-A")).splitlines()
    assert everywhere[0].startswith("NAMESPACE")
    assert any(line.split()[:2] == [namespace, "report"] for line in everywhere)

    documents = json.loads(ok(cli(cluster, "list", "-n", namespace, "-o", "json")))["items"]
    by_name = {item["name"]: item for item in documents}
    assert (
        by_name["nightly"]["nextRunTime"] == status_of(cluster, namespace, "nightly")["nextRunTime"]
    )
    assert by_name["nightly"]["nextRunTime"].endswith("T21:00:00Z")

    # -n stays the namespace; --count says how many.
    lines = ok(cli(cluster, "next", "nightly", "-n", namespace, "--count", "3")).splitlines()
    assert lines[0].split() == ["TIME", "(Asia/Kolkata)", "UTC", "IN"]
    assert len(lines) == 4
    first = datetime.fromisoformat(by_name["nightly"]["nextRunTime"].replace("Z", "+00:00"))
    for day, line in enumerate(lines[1:]):
        fire = first + timedelta(days=day)
        local = fire.astimezone(ZONE).strftime("%Y-%m-%d 02:30 IST (+0530)")
        assert line.startswith(f"{local}   {fire:%Y-%m-%dT%H:%M:%SZ}")
    as_yaml = yaml.safe_load(ok(cli(cluster, "next", "nightly", "-n", namespace, "-o", "yaml")))
    assert as_yaml["timeZone"] == "Asia/Kolkata" and len(as_yaml["items"]) == 5

    stats = json.loads(ok(cli(cluster, "stats", "-n", namespace, "-o", "json")))
    assert stats == {
        "schedules": 2,
        "enabled": 2,
        "runs": 0,
        "succeeded": 0,
        "failed": 0,
        "last24h": 0,
    }

    missing = cli(cluster, "history", "absent", "-n", namespace)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith(
        f'error: not found: schedule "absent" in namespace "{namespace}"'
    )


# -- runs, history, logs -------------------------------------------------------------------


def test_run_wait_follows_the_run_and_exits_by_its_result(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    create(cluster, namespace, "nightly", **NIGHTLY, **ECHO)
    create(cluster, namespace, "broken", cron=NEVER, **FAIL)

    good = cli(cluster, "run", "nightly", "-n", namespace, "--wait", "--timeout", "90")
    assert good.returncode == 0, (good.stdout, good.stderr)
    requested, outcome = good.stdout.splitlines()
    assert requested.startswith(
        "schedule.cronfleet.io/nightly run requested (cronfleet.io/run-now="
    )
    [run] = status_of(cluster, namespace, "nightly")["history"]
    assert outcome.startswith(f"{run['job']} Succeeded in ")
    assert f"started Job {run['job']}" in good.stderr

    bad = cli(cluster, "run", "broken", "-n", namespace, "--wait", "--timeout", "90")
    assert bad.returncode == 1, (bad.stdout, bad.stderr)
    [failed_run] = status_of(cluster, namespace, "broken")["history"]
    assert bad.stdout.splitlines()[1].startswith(f"{failed_run['job']} Failed in ")
    assert "(exit code 1)" in bad.stdout

    # A second run, through kubectl itself: it finds the plugin on PATH.
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env["KUBECONFIG"] = str(cluster.kubeconfig)
    through_kubectl = subprocess.run(
        [cluster.kubectl_path, "cronfleet", "run", "nightly", "-n", namespace, "--wait"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert through_kubectl.returncode == 0, through_kubectl.stderr
    assert "Succeeded" in through_kubectl.stdout

    history = json.loads(ok(cli(cluster, "history", "nightly", "-n", namespace, "-o", "json")))
    assert (history["total"], history["pages"]) == (2, 1)
    assert [item["trigger"] for item in history["items"]] == ["Manual", "Manual"]
    newest, oldest = history["items"]
    assert oldest["job"] == run["job"]
    second_page = yaml.safe_load(
        ok(
            cli(
                cluster,
                "history",
                "nightly",
                "-n",
                namespace,
                "--limit",
                "1",
                "--page",
                "2",
                "-o",
                "yaml",
            )
        )
    )
    assert [item["job"] for item in second_page["items"]] == [run["job"]]
    assert (second_page["page"], second_page["pages"]) == (2, 2)
    paged = cli(cluster, "history", "nightly", "-n", namespace, "--limit", "1")
    assert (
        paged.returncode == 0 and newest["job"] in paged.stdout and run["job"] not in paged.stdout
    )
    assert "page 1 of 2 (2 runs kept in the status); older: --page 2" in paged.stderr
    past = cli(cluster, "history", "nightly", "-n", namespace, "--limit", "1", "--page", "3")
    assert past.returncode == 1 and "--page 3 is past the last page: 2" in past.stderr

    failed = ok(cli(cluster, "history", "broken", "-n", namespace, "--failed")).splitlines()
    assert failed[0].split()[:3] == ["JOB", "TRIGGER", "ATTEMPT"]
    assert failed[1].split()[1] == "Manual" and "Failed" in failed[1].split()
    assert "echo disk full >&2; exit 1' exited with code" in failed[1]

    stats = json.loads(ok(cli(cluster, "stats", "-n", namespace, "-o", "json")))
    assert {k: stats[k] for k in ("runs", "succeeded", "failed", "last24h")} == {
        "runs": 3,
        "succeeded": 2,
        "failed": 1,
        "last24h": 3,
    }
    listed = ok(cli(cluster, "list", "-n", namespace)).splitlines()
    broken = next(line for line in listed if line.startswith("broken "))
    assert broken.split()[-5:] == ["Failed", "Failed", "0%", "<none>", "0"]


def test_run_wait_follows_the_retries_to_the_cycles_end(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    retry = {"maxRetries": 2, "backoff": {"initialDelaySeconds": 1, "factor": 1}}
    params = {"argv": attempt_script(succeed_on=2)}
    create(cluster, namespace, "flaky", cron=NEVER, task="command", params=params, retry=retry)
    waited = cli(cluster, "run", "flaky", "-n", namespace, "--wait", "--timeout", "120")
    assert waited.returncode == 0, (waited.stdout, waited.stderr)
    history = status_of(cluster, namespace, "flaky")["history"]
    assert [(run["trigger"], run["result"]) for run in history] == [
        ("Retry", "Succeeded"),
        ("Manual", "Failed"),
    ]
    assert "failed; retrying" in waited.stderr
    assert waited.stdout.splitlines()[1].startswith(f"{history[0]['job']} Succeeded in ")


def test_logs_of_a_run_and_of_a_run_whose_job_is_gone(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    create(cluster, namespace, "nightly", **NIGHTLY, **ECHO)
    ok(cli(cluster, "run", "nightly", "-n", namespace, "--wait", "--timeout", "90"))
    [run] = status_of(cluster, namespace, "nightly")["history"]

    cluster.kube.delete(JOBS, run["job"], namespace)
    eventually(
        lambda: cluster.kube.get_or_none(JOBS, run["job"], namespace) is None,
        timeout=30,
        what="the Job deleted",
    )
    gone = cli(cluster, "logs", "nightly", "-n", namespace, "--run", run["job"])
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.startswith(
        f"error: the log of run {run['job']} is gone: its Job was deleted"
    )
    assert gone.stderr.endswith(f"; the status keeps its summary: Succeeded: {run['message']}\n")


def test_logs_read_the_runs_pod_log(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    create(cluster, namespace, "nightly", **NIGHTLY, **ECHO)
    ok(cli(cluster, "run", "nightly", "-n", namespace, "--wait", "--timeout", "90"))
    [run] = status_of(cluster, namespace, "nightly")["history"]
    result = cli(cluster, "logs", "nightly", "-n", namespace)
    assert result.returncode == 0, result.stderr
    assert f"hello from {run['job']}" in result.stdout
    assert (
        ok(cli(cluster, "logs", "nightly", "-n", namespace, "--run", run["job"])) == result.stdout
    )


# -- acting --------------------------------------------------------------------------------


def test_pause_resume_reset_and_a_refused_run(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    created = create(cluster, namespace, "nightly", **NIGHTLY, **ECHO)
    paused = ok(cli(cluster, "pause", "nightly", "-n", namespace, "--reason", "db migration"))
    assert paused == "schedule.cronfleet.io/nightly paused (db migration)\n"
    status = wait_phase(cluster, namespace, "nightly", "Paused")
    assert "db migration" in status["message"]
    row = next(
        line for line in ok(cli(cluster, "list", "-n", namespace)).splitlines() if "nightly" in line
    )
    assert "Paused (db migration)" in row
    stored = cluster.kube.get(SCHEDULES, "nightly", namespace)
    assert stored["spec"] == created["spec"] and stored["metadata"]["generation"] == 1

    refused = cli(cluster, "run", "nightly", "-n", namespace, "--wait", "--timeout", "60")
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert (
        "run refused: the schedule is paused (cronfleet.io/pause: db migration)" in refused.stderr
    )
    assert cluster.kube.items(JOBS, namespace) == []

    next_while_paused = cli(cluster, "next", "nightly", "-n", namespace, "--count", "1")
    assert next_while_paused.returncode == 0
    assert next_while_paused.stderr.startswith("note: the schedule is paused")

    assert ok(cli(cluster, "resume", "nightly", "-n", namespace)) == (
        "schedule.cronfleet.io/nightly resumed\n"
    )
    wait_phase(cluster, namespace, "nightly", "Active")
    assert "cronfleet.io/pause" not in annotations_of(cluster, namespace, "nightly")

    create(cluster, namespace, "broken", cron=NEVER, **FAIL)
    assert cli(cluster, "run", "broken", "-n", namespace, "--wait").returncode == 1
    wait_phase(cluster, namespace, "broken", "Failed")
    reset = ok(cli(cluster, "reset", "broken", "-n", namespace))
    assert reset.startswith("schedule.cronfleet.io/broken reset requested (cronfleet.io/reset=")
    after = wait_phase(cluster, namespace, "broken", "Active")
    assert (after["retryCount"], after["consecutiveFailures"]) == (0, 0)


def test_backfill_runs_each_fire_time_of_the_range(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    create(cluster, namespace, "hourly", cron="0 * * * *", task="sleep", params={"seconds": 0})
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    end = start + timedelta(hours=2)
    frm, to = f"{start:%Y-%m-%dT%H:%M:%SZ}", f"{end:%Y-%m-%dT%H:%M:%SZ}"
    out = ok(cli(cluster, "backfill", "hourly", "-n", namespace, "--from", frm, "--to", to))
    assert out == (
        f"schedule.cronfleet.io/hourly backfill requested (cronfleet.io/backfill={frm}/{to}): "
        f"3 fire times, from {frm} to {to}\n"
    )

    def backfilled() -> list[Object] | None:
        runs = [
            run
            for run in status_of(cluster, namespace, "hourly").get("history") or []
            if run["trigger"] == "Backfill" and run.get("result") == "Succeeded"
        ]
        return runs if len(runs) == 3 else None

    runs = eventually(backfilled, timeout=120, interval=1, what="three backfill runs")
    assert sorted(run["scheduledTime"] for run in runs) == [
        f"{start + timedelta(hours=h):%Y-%m-%dT%H:%M:%SZ}" for h in range(3)
    ]
    empty = cli(
        cluster,
        "backfill",
        "hourly",
        "-n",
        namespace,
        "--from",
        frm,
        "--to",
        f"{start:%Y-%m-%dT%H:%M:30Z}",
    )
    assert empty.returncode == 0  # the range's first fire time is included
    none = cli(
        cluster,
        "backfill",
        "hourly",
        "-n",
        namespace,
        "--from",
        f"{start:%Y-%m-%dT%H:%M:01Z}",
        "--to",
        f"{start:%Y-%m-%dT%H:%M:59Z}",
    )
    assert none.returncode == 1 and "nothing to backfill" in none.stderr


# -- whose credentials -----------------------------------------------------------------------


def test_a_user_who_may_read_but_not_patch_is_told_forbidden_and_nothing_changes(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    create(cluster, namespace, "nightly", **NIGHTLY, **ECHO)
    grant(cluster, namespace, "viewer", ["get", "list", "watch"])
    token = user_token(cluster, namespace, "viewer")
    kubeconfig = user_kubeconfig(cluster, tmp_path / "viewer", namespace, {"token": token})
    before = annotations_of(cluster, namespace, "nightly")

    # The context's namespace is used without -n.
    assert "nightly" in ok(cli(cluster, "list", kubeconfig=kubeconfig))
    assert ok(cli(cluster, "next", "nightly", kubeconfig=kubeconfig))

    user = f"system:serviceaccount:{namespace}:viewer"
    for argv in (
        ["run", "nightly", "--wait"],
        ["pause", "nightly", "--reason", "x"],
        ["reset", "nightly"],
    ):
        refused = cli(cluster, *argv, kubeconfig=kubeconfig)
        assert refused.returncode == 1, (argv, refused.stdout, refused.stderr)
        assert refused.stdout == ""
        assert refused.stderr.startswith(
            f'error: forbidden: schedules.cronfleet.io "nightly" is forbidden: User "{user}" '
            'cannot patch resource "schedules" in API group "cronfleet.io"'
        ), refused.stderr
    assert annotations_of(cluster, namespace, "nightly") == before
    assert status_of(cluster, namespace, "nightly").get("manualRuns", []) == []
    assert cluster.kube.items(JOBS, namespace) == []
    # What a UI asks before it offers a button: the same answer, before any write.
    session = load_session(str(kubeconfig))
    assert session.namespace == namespace
    assert allowed(session, namespace, "get") == (True, "")
    may_patch, why = allowed(session, namespace, "patch")
    assert not may_patch
    assert why.startswith(f'you may not patch schedules.cronfleet.io in namespace "{namespace}"')
    # The namespace the context does not name is still only what RBAC allows.
    other = cli(cluster, "list", "-n", "default", kubeconfig=kubeconfig)
    assert other.returncode == 1 and other.stderr.startswith("error: forbidden: ")


def test_an_exec_credential_plugin_user(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    create(cluster, namespace, "nightly", **NIGHTLY, **ECHO)
    grant(cluster, namespace, "operator-user", ["get", "list", "watch", "patch"])
    token = user_token(cluster, namespace, "operator-user")
    calls = tmp_path / "calls"
    # What EKS's, GKE's and AKS's credential helpers do: print an ExecCredential.
    helper = tmp_path / "credential-helper"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": token},
    }
    helper.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$KUBERNETES_EXEC_INFO" >> {calls}\n'
        f"cat <<'END'\n{json.dumps(credential)}\nEND\n"
    )
    helper.chmod(0o755)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(helper),
            "interactiveMode": "Never",
        }
    }
    kubeconfig = user_kubeconfig(cluster, tmp_path / "exec", namespace, user)

    assert "nightly" in ok(cli(cluster, "list", kubeconfig=kubeconfig))
    ok(cli(cluster, "pause", "nightly", "--reason", "exec user", kubeconfig=kubeconfig))
    wait_phase(cluster, namespace, "nightly", "Paused")
    ok(cli(cluster, "resume", "nightly", kubeconfig=kubeconfig))
    wait_phase(cluster, namespace, "nightly", "Active")
    asked = [json.loads(line) for line in calls.read_text().splitlines()]
    assert len(asked) >= 3
    assert asked[0]["kind"] == "ExecCredential"
    assert asked[0]["apiVersion"] == "client.authentication.k8s.io/v1"

    # A helper that fails is reported, not hidden.
    helper.write_text("#!/bin/sh\necho 'token expired: log in again' >&2\nexit 3\n")
    failing = cli(cluster, "list", kubeconfig=kubeconfig)
    assert failing.returncode == 1
    assert failing.stderr == (
        "error: cannot get credentials for user 'someone' of the kubeconfig "
        f"({tmp_path / 'exec'}): exec: process returned 3. token expired: log in again\n"
    )


# -- an OIDC auth-provider user, against a fake token issuer on loopback ----------------------


def _b64(document: Object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def expired_id_token() -> str:
    """A JWT whose exp passed: the client must refresh it at the issuer before any request."""
    for pad in range(4):
        payload = _b64({"iss": "fake", "sub": "someone", "exp": 1_000_000_000, "p": "x" * pad})
        # The client refuses a payload whose base64 would need three "=".
        if len(payload) % 4 != 1:
            return f"{_b64({'alg': 'RS256'})}.{payload}.c2ln"
    raise AssertionError("no payload length fits")


def loopback_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA of its own and a certificate for 127.0.0.1 signed by it."""
    directory.mkdir()
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=fake-issuer-ca",
        "-days",
        "1",
        cwd=directory,
    )
    extensions = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    issue_certificate(directory, "issuer", "/CN=127.0.0.1", extensions, days=1)
    return directory / "ca.crt", directory / "issuer.crt", directory / "issuer.key"


class FakeIssuer(ThreadingHTTPServer):
    """An OpenID provider's discovery document and token endpoint, nothing more."""

    def __init__(self, id_token: str, certificate: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), IssuerHandler)
        self.id_token = id_token
        self.refreshes: list[dict[str, str]] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"


class IssuerHandler(BaseHTTPRequestHandler):
    server: FakeIssuer

    def _send(self, status: int, body: Object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/.well-known/openid-configuration":
            url = self.server.url
            self._send(200, {"issuer": url, "token_endpoint": f"{url}/token"})
        else:
            self._send(404, {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        expected = "Basic " + base64.b64encode(b"cronfleet-cli:s3cret").decode()
        if self.path != "/token" or self.headers.get("Authorization") != expected:
            self._send(401, {"error": "invalid_client"})
            return
        self.server.refreshes.append(form)
        self._send(
            200,
            {
                "access_token": "unused",
                "token_type": "Bearer",
                "expires_in": 3600,
                "id_token": self.server.id_token,
                "refresh_token": "refresh-2",
            },
        )

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_oidc_auth_provider_user_refreshes_its_token_at_the_issuer(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    create(cluster, namespace, "nightly", **NIGHTLY, **ECHO)
    grant(cluster, namespace, "oidc-user", ["get", "list", "watch", "patch"])
    # The API server here trusts ServiceAccount tokens, not an OIDC issuer: the
    # fake issuer hands out a real ServiceAccount token as the fresh id-token.
    fresh = user_token(cluster, namespace, "oidc-user")
    ca, certificate, key = loopback_certificate(tmp_path / "issuer-pki")
    issuer = FakeIssuer(fresh, certificate, key)
    serving = threading.Thread(target=issuer.serve_forever, daemon=True)
    serving.start()
    try:
        user = {
            "auth-provider": {
                "name": "oidc",
                "config": {
                    "client-id": "cronfleet-cli",
                    "client-secret": "s3cret",
                    "id-token": expired_id_token(),
                    "refresh-token": "refresh-1",
                    "idp-issuer-url": issuer.url,
                    "idp-certificate-authority": str(ca),
                },
            }
        }
        kubeconfig = user_kubeconfig(cluster, tmp_path / "oidc", namespace, user)
        assert "nightly" in ok(cli(cluster, "list", kubeconfig=kubeconfig))
        assert [form["refresh_token"] for form in issuer.refreshes] == ["refresh-1"]
        assert issuer.refreshes[0]["grant_type"] == "refresh_token"
        ok(cli(cluster, "pause", "nightly", "--reason", "oidc user", kubeconfig=kubeconfig))
        wait_phase(cluster, namespace, "nightly", "Paused")
        fields = cluster.kube.get(SCHEDULES, "nightly", namespace)["metadata"]["managedFields"]
        assert any(field["manager"] == "kubectl-cronfleet" for field in fields)
    finally:
        issuer.shutdown()
        issuer.server_close()
