"""The onboarding app in a real browser (Debian's chromium, driven by Playwright),
against the real control plane, a local bare git repository standing in for the
GitOps remote, and, for the end-to-end test, the real platform and operator.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from clientpipelines.app import onboarding
from clientpipelines.app.onboarding import Submission
from clientpipelines.manifests import GROUP, LABEL_CLIENT, PLURAL, VERSION
from clientpipelines.naming import ClientNames
from clientpipelines.operator import requests
from devstack import kubelet, onboarding_app
from devstack.binaries import helm_build
from devstack.controlplane import ControlPlane
from devstack.demo import run_pipeline_once
from devstack.operator import QUIET_SCHEDULE, OperatorProcess, install_crd, wait_ready
from devstack.paths import REPO_ROOT
from devstack.procs import http_ok, wait_for
from devstack.sampledata import SampleData
from devstack.stack import Stack
from devstack.wiring import lake_differences, unwire_client, wait_for_cdc

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
CHROMIUM = shutil.which("chromium")
# Expectations retry up to 30 s (5 by default): a first page load on a busy 2-core
# machine takes longer.
sync_api.expect.set_options(timeout=30_000)
USER_HEADER = "X-Forwarded-Email"
USER = "onboarder@example.org"
# Every password a test typed into the app: none may reach its log.
PASSWORDS: list[str] = []
# The README's pictures come from these tests when this names a folder.
SCREENSHOTS = os.environ.get("CLIENTPIPELINES_SCREENSHOTS_OUT")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass
class Remote:
    """A bare repository standing in for the GitOps remote, seeded with the chart and
    the clients/ folder as main holds them."""

    path: Path

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def branches(self) -> list[str]:
        out = _git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=self.path)
        return out.splitlines()

    def changed_files(self, branch: str, base: str = "main") -> list[str]:
        return _git("diff", "--name-only", f"{base}...{branch}", cwd=self.path).splitlines()

    def show(self, branch: str, path: str) -> str:
        return _git("show", f"{branch}:{path}", cwd=self.path) + "\n"


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Remote:
    root = tmp_path_factory.mktemp("gitops")
    bare, work = root / "gitops.git", root / "seed"
    _git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=root)
    work.mkdir()
    shutil.copytree(REPO_ROOT / "charts" / "client-pipeline", work / "charts" / "client-pipeline")
    shutil.copytree(REPO_ROOT / "clients", work / "clients")
    _git("init", "--quiet", "--initial-branch=main", cwd=work)
    _git("add", ".", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "seed", cwd=work)
    _git("push", "--quiet", str(bare), "main", cwd=work)
    return Remote(bare)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serving(url: str) -> bool:
    try:
        return http_ok(url)
    except OSError:
        return False


@dataclass
class App:
    url: str
    namespace: str
    log: Path


@pytest.fixture(scope="module")
def app_namespace(kube_api: client.ApiClient) -> Iterator[str]:
    install_crd(kube_api)
    name = f"app-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def app(
    control_plane: ControlPlane,
    app_namespace: str,
    remote: Remote,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[App]:
    """`clientpipelines-app` as a process, configured as the chart configures it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    # As `make app` runs it, with the auth proxy's header required; the stack's fixed
    # Trino port (the platform fixture starts it for the test that needs it).
    env = onboarding_app.app_env(
        control_plane.kubeconfig,
        app_namespace,
        gitops_remote=remote.url,
        trino=Stack().endpoints().trino_login(),
        user_header=USER_HEADER,
    )
    with log.open("w") as out:
        proc = subprocess.Popen(
            onboarding_app.app_argv(port),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the app to serve", lambda: _serving(f"{url}/_stcore/health"), timeout=60)
        yield App(url, app_namespace, log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert not [p for p in PASSWORDS if p in text], "a password reached the app's log"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        # Playwright's own browser download cannot be reached here: Debian's chromium.
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A browser tab whose requests carry the auth proxy's user header."""
    context = browser.new_context(
        extra_http_headers={USER_HEADER: USER}, viewport={"width": 1280, "height": 1500}
    )
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()


# -- driving the form -------------------------------------------------------------------------


def _settle(page: Any) -> None:
    """Wait until Streamlit has finished re-running the script."""
    page.wait_for_timeout(300)
    sync_api.expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=30_000)


def _type(page: Any, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")  # Streamlit commits a text input on Enter (or blur)
    _settle(page)


def _choose(page: Any, label: str, option: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    _settle(page)


def fill_form(page: Any, app: App, sub: Submission) -> None:
    page.goto(app.url + "/")
    sync_api.expect(page.get_by_role("heading", name="New client")).to_be_visible()
    _type(page, "Client id", sub.client_id)
    _type(page, "Source host", sub.host)
    _type(page, "Port", str(sub.port))
    _type(page, "Database", sub.database)
    for table in sub.tables:
        # Its input, not the box: a click there may land on a chosen table's tag.
        page.get_by_test_id("stMultiSelect").locator("input").click()
        # The list is virtual (only the visible options exist): filter it first.
        page.keyboard.type(f"{table}:")
        page.get_by_role("option", name=re.compile(f"^{table}:")).click()
        _settle(page)
    page.keyboard.press("Escape")
    _choose(page, "Ingestion", sub.mode)
    _choose(page, "TLS to the source", sub.ssl_mode)
    _type(page, "Schedule (cron)", sub.schedule)
    page.get_by_test_id("stRadio").get_by_text(sub.deletion_policy, exact=True).click()
    _settle(page)
    _type(page, "Database user", sub.username)
    PASSWORDS.append(sub.password)
    _type(page, "Password", sub.password)


def submit(page: Any) -> None:
    page.get_by_role("button", name="Submit").click()
    _settle(page)


def _secret(api: client.ApiClient, namespace: str, name: str) -> Any:
    try:
        return client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


VALID = Submission(
    client_id="valid",
    host="db.example.org",
    database="omop",
    tables=("person", "provider", "care_site"),
    ssl_mode="require",
    schedule="*/15 * * * *",
    username="cdc_reader",
    password="correct-horse-battery",
)


@pytest.mark.parametrize(
    ("field", "change", "error"),
    [
        ("client_id", {"client_id": "Bad_Id"}, "clientId: 'Bad_Id' does not match"),
        ("schedule", {"schedule": "61 * * * *"}, "spec.transform.schedule"),
        ("tables", {"tables": ()}, "choose at least one table"),
        ("password", {"password": "${ENV:LAKE_S3_SECRET_KEY}"}, "the password contains '${'"),
        # An inline password: a connection URL with the login in the host field.
        ("host", {"host": "cdc:hunter2@db.example.org"}, "the login goes in the Credentials"),
    ],
)
def test_an_invalid_field_shows_its_error_and_nothing_is_written(
    app: App,
    page: Any,
    remote: Remote,
    kube_api: client.ApiClient,
    field: str,
    change: dict[str, Any],
    error: str,
) -> None:
    cid = f"bad-{uuid.uuid4().hex[:6]}"
    sub = Submission(**{**VALID.__dict__, "client_id": cid, **change})
    fill_form(page, app, sub)
    # As you type: the field's error is there before any submit.
    alerts = page.get_by_test_id("stAlert")
    if field != "tables":  # an untouched empty choice is not an error until submit
        sync_api.expect(alerts.filter(has_text=error)).to_be_visible()
    submit(page)
    sync_api.expect(alerts.filter(has_text="Nothing was written")).to_be_visible()
    sync_api.expect(alerts.filter(has_text=error)).to_be_visible()
    assert page.get_by_text("What the operator will create").count() == 0
    assert f"onboard/{sub.client_id}" not in remote.branches()
    assert _secret(kube_api, app.namespace, sub.secret_name) is None
    assert not client.CustomObjectsApi(kube_api).list_namespaced_custom_object(
        GROUP, VERSION, app.namespace, PLURAL
    )["items"]


def test_without_the_auth_proxys_header_nothing_is_written(
    app: App, browser: Any, remote: Remote, kube_api: client.ApiClient
) -> None:
    context = browser.new_context()
    tab = context.new_page()
    try:
        sub = Submission(**{**VALID.__dict__, "client_id": f"anon-{uuid.uuid4().hex[:6]}"})
        fill_form(tab, app, sub)
        submit(tab)
        sync_api.expect(
            tab.get_by_test_id("stAlert").filter(has_text="not authenticated by the auth proxy")
        ).to_be_visible()
        assert f"onboard/{sub.client_id}" not in remote.branches()
        assert _secret(kube_api, app.namespace, sub.secret_name) is None
    finally:
        context.close()


def test_a_taken_secret_name_is_refused_and_nothing_is_written(
    app: App, page: Any, remote: Remote, kube_api: client.ApiClient
) -> None:
    """The app cannot read Secrets, so it never replaces one: a name in use is refused
    (by the API server's dry-run) before any branch exists."""
    sub = Submission(**{**VALID.__dict__, "client_id": f"taken-{uuid.uuid4().hex[:6]}"})
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_secret(
        app.namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name=sub.secret_name), string_data={"k": "v"}),
    )
    try:
        fill_form(page, app, sub)
        submit(page)
        alerts = page.get_by_test_id("stAlert")
        sync_api.expect(
            alerts.filter(has_text=f"a Secret {sub.secret_name} exists")
        ).to_be_visible()
        assert f"onboard/{sub.client_id}" not in remote.branches()
        assert _secret(kube_api, app.namespace, sub.secret_name).data == {
            "k": base64.b64encode(b"v").decode()
        }
    finally:
        core.delete_namespaced_secret(sub.secret_name, app.namespace)


def _merge_and_sync(
    remote: Remote, branch: str, client_id: str, namespace: str, api: client.ApiClient
) -> dict[str, Any]:
    """Merge the proposal as a reviewer would, then do what ArgoCD's ApplicationSet
    does with the merged main: render clients/<id>/values.yaml with the chart and apply."""
    work = remote.path.parent / f"merge-{client_id}"
    _git("clone", "--quiet", remote.url, str(work), cwd=remote.path.parent)
    _git("merge", "--quiet", "--ff-only", f"origin/{branch}", cwd=work)
    _git("push", "--quiet", "origin", "main", cwd=work)
    rendered = subprocess.run(
        [
            str(helm_build().paths()["helm"]),
            "template",
            client_id,
            str(work / "charts" / "client-pipeline"),
            "-n",
            namespace,
            "-f",
            str(work / "clients" / client_id / "values.yaml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (pipeline,) = [d for d in yaml.safe_load_all(rendered) if d]
    return dict(
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, pipeline
        )
    )


@pytest.mark.timeout(900)
def test_a_client_onboarded_in_the_app_is_merged_published_and_shown(
    app: App,
    page: Any,
    remote: Remote,
    operator: OperatorProcess,
    platform: Stack,
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
) -> None:
    cid = f"o{uuid.uuid4().hex[:7]}"
    source = SampleData(platform).create(cid, rows=40, seed=11, tables=("provider", "care_site"))
    sub = Submission(
        client_id=cid,
        host=source.host,
        port=source.port,
        database=source.database,
        tables=("care_site", "provider"),
        ssl_mode="disable",
        # Runs are started below by hand; see QUIET_SCHEDULE.
        schedule=QUIET_SCHEDULE,
        deletion_policy="Delete",
        username=source.username,
        password=source.password,
    )
    objects = client.CustomObjectsApi(kube_api)
    try:
        fill_form(page, app, sub)
        preview = page.get_by_test_id("stCode").first
        sync_api.expect(preview).to_contain_text(f"Kafka Connect connector {cid}")
        sync_api.expect(preview).to_contain_text(f"CronJob {cid}-pipeline")
        assert source.password not in preview.inner_text()  # the preview names the Secret
        _screenshot(page, "onboarding-form.png")
        submit(page)
        alerts = page.get_by_test_id("stAlert")
        sync_api.expect(alerts.filter(has_text=f"Branch onboard/{cid} pushed")).to_be_visible()
        # Once written, the credentials are gone from the page.
        sync_api.expect(page.get_by_label("Password", exact=True)).to_have_value("")
        assert source.password not in page.content()

        # The branch holds exactly the values file; the Secret is in the cluster.
        branch = f"onboard/{cid}"
        assert remote.changed_files(branch) == [f"clients/{cid}/values.yaml"]
        assert remote.show(branch, f"clients/{cid}/values.yaml") == onboarding.values_file(sub)
        secret = _secret(kube_api, app.namespace, sub.secret_name)
        assert secret.metadata.labels[LABEL_CLIENT] == cid
        assert secret.metadata.annotations[onboarding.ONBOARDED_BY] == USER
        assert base64.b64decode(secret.data["password"]).decode() == source.password
        assert source.password not in _git("log", "-p", "--all", cwd=remote.path)
        assert (
            objects.list_namespaced_custom_object(GROUP, VERSION, app.namespace, PLURAL)["items"]
            == []
        )  # GitOps: nothing in the cluster before the merge

        # Submitting the same client again is refused; nothing changes.
        fill_form(page, app, Submission(**{**sub.__dict__, "password": "another-one"}))
        submit(page)
        sync_api.expect(alerts.filter(has_text="a proposal is waiting for review")).to_be_visible()
        assert remote.show(branch, f"clients/{cid}/values.yaml") == onboarding.values_file(sub)

        # Merge; what ArgoCD would do; the operator makes it Ready; one run publishes.
        _merge_and_sync(remote, branch, cid, app.namespace, kube_api)
        wait_ready(kube_api, app.namespace, cid)
        wait_for_cdc(platform, cid)
        assert run_pipeline_once(kube_api, control_plane.kubeconfig, cid, app.namespace) == 0
        diffs = lake_differences(platform, cid)
        assert all(d == 0 and s == lake for s, lake, d in diffs.values()), diffs
        run = wait_for(
            "status.lastRun to show the run",
            lambda: (
                r
                if (
                    r := objects.get_namespaced_custom_object(
                        GROUP, VERSION, app.namespace, PLURAL, cid
                    )
                    .get("status", {})
                    .get("lastRun", {})
                ).get("phase")
                == "Succeeded"
                else None
            ),
            timeout=60,
        )
        published = sum(lake for _, lake, _ in diffs.values())

        # The clients page shows it: Ready, the run, the published tables' rows.
        page.goto(app.url + "/clients")
        sync_api.expect(page.get_by_role("heading", name="Clients")).to_be_visible()
        detail = page.get_by_test_id("stCode").first
        sync_api.expect(detail).to_contain_text(f"ClientPipeline {app.namespace}/{cid}")
        sync_api.expect(detail).to_contain_text(re.compile(r"Ready\s+True"))
        sync_api.expect(detail).to_contain_text("Succeeded")
        sync_api.expect(detail).to_contain_text("freshness: last successful run")
        row = page.get_by_test_id("stTable").get_by_role("row").filter(has_text=cid)
        for cell in ("True", "AllPartsReady", f"Succeeded ({run['job']})", "care_site, provider"):
            sync_api.expect(row).to_contain_text(cell)
        sync_api.expect(row).to_contain_text(f"{published} in 2 tables")
        for table, (_, lake, _) in diffs.items():
            schema = ClientNames(cid).lake_schema
            sync_api.expect(detail).to_contain_text(f"lake.{schema}.{table}: {lake} rows")
        _screenshot(page, "clients-page.png")

        # An action, behind its confirmation: run now.
        batch = client.BatchV1Api(kube_api)
        runs = f"{LABEL_CLIENT}={cid}"
        before = {
            j.metadata.name
            for j in batch.list_namespaced_job(app.namespace, label_selector=runs).items
        }
        page.get_by_test_id("stCheckbox").get_by_text("I confirm").click()
        _settle(page)
        page.get_by_role("button", name="Do it").click()
        _settle(page)
        sync_api.expect(alerts.filter(has_text="run now")).to_be_visible()
        job = wait_for(
            "the operator to start the requested run",
            lambda: next(
                (
                    j
                    for j in batch.list_namespaced_job(app.namespace, label_selector=runs).items
                    if j.metadata.name not in before
                ),
                None,
            ),
            timeout=60,
        )
        assert kubelet.run_job(kube_api, app.namespace, job.metadata.name) == 0
        obj = objects.get_namespaced_custom_object(GROUP, VERSION, app.namespace, PLURAL, cid)
        assert requests.RUN_NOW not in (obj["metadata"].get("annotations") or {})
    finally:
        try:
            objects.delete_namespaced_custom_object(GROUP, VERSION, app.namespace, PLURAL, cid)
        except ApiException as exc:
            if exc.status != 404:
                raise
        wait_for(
            "the operator to remove the pipeline",
            lambda: (
                not objects.list_namespaced_custom_object(GROUP, VERSION, app.namespace, PLURAL)[
                    "items"
                ]
            ),
            timeout=120,
        )
        try:
            client.CoreV1Api(kube_api).delete_namespaced_secret(sub.secret_name, app.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
        unwire_client(platform, cid)
