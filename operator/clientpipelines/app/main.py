"""The onboarding app (Streamlit): `clientpipelines-app`, or `streamlit run` on this file.

Settings (environment):
- KUBECONFIG, or in-cluster: the app's own ServiceAccount (create Secrets and
  dry-run ClientPipelines in CLIENTS_NAMESPACE; read ClientPipelines and Events;
  patch ClientPipelines for the actions).
- CLIENTS_NAMESPACE (default `clients`), GITOPS_REMOTE (a git URL the app may
  push to), GITOPS_BASE (default `main`), HELM (the helm binary, default `helm`),
  CLIENT_CHART (the client-pipeline chart's folder).
- FORGE (`github`, `gitlab`, or empty: the branch is left for review), FORGE_API,
  FORGE_REPOSITORY, FORGE_TOKEN (from a Secret).
- DIRECT_APPLY=1: apply the ClientPipeline to the cluster instead of proposing it
  in git (clusters without GitOps).
- TRUSTED_USER_HEADER (e.g. X-Forwarded-Email): the header the cluster's auth proxy
  sets; without it the app refuses to act (anyone reaching it could otherwise).
- TRINO_HOST/TRINO_PORT: when set, published row counts on the clients page.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import streamlit as st
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from clientpipelines import omop
from clientpipelines.app import onboarding
from clientpipelines.app.onboarding import Submission
from clientpipelines.cli import _preview_settings, human_age, preview_lines, status_lines
from clientpipelines.manifests import GROUP, PLURAL, VERSION
from clientpipelines.operator import requests

NAMESPACE = os.environ.get("CLIENTS_NAMESPACE", "clients")
CHART = Path(
    os.environ.get("CLIENT_CHART", Path(__file__).parents[3] / "charts" / "client-pipeline")
)


@st.cache_resource
def _api() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def _user() -> str | None:
    header = os.environ.get("TRUSTED_USER_HEADER")
    if not header:
        return None
    return st.context.headers.get(header)


def _submission() -> Submission:
    s = st.session_state
    return Submission(
        client_id=s.get("client_id", ""),
        host=s.get("host", ""),
        port=int(s.get("port", 5432)),
        database=s.get("database", ""),
        schema=s.get("schema", "public"),
        tables=tuple(s.get("tables", [])),
        ssl_mode=s.get("ssl_mode", "require"),
        mode=s.get("mode", "cdc"),
        schedule=s.get("schedule", "*/15 * * * *"),
        time_zone=s.get("time_zone", ""),
        deletion_policy=s.get("deletion_policy", "Retain"),
        username=s.get("username", ""),
        password=s.get("password", ""),
    )


@st.cache_data(show_spinner=False)
def _rendered(sub_json: str) -> tuple[dict[str, Any] | None, str]:
    sub = Submission(**{**json.loads(sub_json), "tables": tuple(json.loads(sub_json)["tables"])})
    try:
        helm = Path(os.environ.get("HELM", "helm"))
        return onboarding.render(sub, helm, CHART, NAMESPACE), ""
    except ValueError as exc:
        return None, str(exc)


def _errors(sub: Submission) -> tuple[dict[str, Any] | None, dict[str, str]]:
    public = {k: v for k, v in sub.__dict__.items() if k not in ("username", "password")}
    pipeline, problem = _rendered(json.dumps({**public, "username": "", "password": ""}))
    errors = onboarding.submission_errors(sub)
    if pipeline is None:
        errors.setdefault("client_id", problem)
        return None, errors
    return pipeline, {**onboarding.field_errors(pipeline), **errors}


def _field_error(errors: dict[str, str], name: str) -> None:
    if name in errors and st.session_state.get("touched"):
        st.error(errors[name], icon=":material/error:")


def new_client() -> None:
    st.header("New client")
    sub = _submission()
    pipeline, errors = _errors(sub)
    st.text_input("Client id", key="client_id", help="lowercase letters, digits and '-'")
    _field_error(errors, "client_id")
    left, right = st.columns(2)
    left.text_input("Source host", key="host")
    right.number_input("Port", key="port", min_value=1, max_value=65535, value=5432)
    _field_error(errors, "host")
    _field_error(errors, "port")
    left, right = st.columns(2)
    left.text_input("Database", key="database")
    right.text_input("Schema", key="schema", value="public")
    _field_error(errors, "database")
    tables = omop.load()
    st.multiselect(
        "Tables (OMOP CDM v5.4)",
        options=list(tables),
        key="tables",
        help="; ".join(f"{t}: {d}" for t, d in omop.descriptions().items())[:2000],
    )
    _field_error(errors, "tables")
    left, right = st.columns(2)
    left.selectbox("Ingestion", ["cdc", "full-reload"], key="mode")
    right.selectbox(
        "TLS to the source", ["require", "verify-ca", "verify-full", "disable"], key="ssl_mode"
    )
    st.text_input("Schedule (cron)", key="schedule", value="*/15 * * * *")
    reading = onboarding.cron_text(sub.schedule)
    st.caption(reading or "not a schedule cron can read")
    _field_error(errors, "schedule")
    st.radio("Deletion policy", ["Retain", "Delete"], key="deletion_policy", horizontal=True)
    st.subheader("Credentials")
    st.caption(
        "Written to a Kubernetes Secret labelled for this client; never to git, never shown again."
    )
    left, right = st.columns(2)
    left.text_input("Database user", key="username")
    right.text_input("Password", key="password", type="password")
    _field_error(errors, "username")
    _field_error(errors, "password")

    if pipeline is not None:
        with st.expander("What the operator will create"):
            try:
                st.code("\n".join(preview_lines(pipeline, _preview_settings())), language=None)
            except Exception as exc:  # noqa: BLE001 - the preview only helps
                st.write(f"no preview: {exc}")

    if st.button("Submit", type="primary"):
        st.session_state["touched"] = True
        if errors:
            st.error("Nothing was written: fix the fields above.")
            st.rerun()
        _submit(sub, pipeline)


def _submit(sub: Submission, pipeline: dict[str, Any] | None) -> None:
    user = _user()
    if os.environ.get("TRUSTED_USER_HEADER") and not user:
        st.error("Refused: the request did not come through the cluster's auth proxy.")
        return
    assert pipeline is not None
    api = _api()
    core, objects = client.CoreV1Api(api), client.CustomObjectsApi(api)
    secret = onboarding.secret_manifest(sub, NAMESPACE)
    try:
        objects.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, pipeline, dry_run="All"
        )
        core.create_namespaced_secret(NAMESPACE, secret, dry_run="All")
    except ApiException as exc:
        st.error(f"The API server refused it (nothing was written): {_reason(exc)}")
        return
    core.create_namespaced_secret(NAMESPACE, secret)
    if os.environ.get("DIRECT_APPLY") == "1":
        objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, pipeline)
        st.success(f"{sub.client_id} applied to namespace {NAMESPACE}.")
        return
    proposal = onboarding.propose(sub, os.environ["GITOPS_REMOTE"], base=_base())
    st.success(f"Branch {proposal.branch} pushed ({proposal.commit[:12]}): {proposal.path}")
    forge = os.environ.get("FORGE", "")
    if forge:
        url = _open_pull_request(forge, sub, proposal, pipeline)
        st.success(f"Pull request opened: {url}")
    else:
        st.info("No forge is configured: review and merge the branch.")


def _base() -> str:
    return os.environ.get("GITOPS_BASE", "main")


def _open_pull_request(
    forge: str, sub: Submission, proposal: onboarding.Proposal, pipeline: dict[str, Any]
) -> str:
    text = onboarding.describe(sub, preview_lines(pipeline, _preview_settings()))
    build = onboarding.github_pull_request if forge == "github" else onboarding.gitlab_merge_request
    req = build(
        os.environ["FORGE_API"],
        os.environ["FORGE_REPOSITORY"],
        os.environ["FORGE_TOKEN"],
        proposal,
        _base(),
        text,
    )
    http = urllib.request.Request(
        req.url,
        json.dumps(req.body).encode(),
        {**req.headers, "Content-Type": "application/json"},
        method=req.method,
    )
    with urllib.request.urlopen(http, timeout=30) as resp:  # noqa: S310 - the configured forge
        body = json.loads(resp.read())
    return str(body.get("html_url") or body.get("web_url") or "")


def _reason(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", exc.reason))
    except ValueError:
        return str(exc.reason)


# -- clients --------------------------------------------------------------------------------


def clients() -> None:
    st.header("Clients")
    api = _api()
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL
    )["items"]
    now = dt.datetime.now(dt.UTC)
    rows = []
    for obj in items:
        status = obj.get("status") or {}
        conds = {c["type"]: c for c in status.get("conditions") or []}
        good = (status.get("lastSuccessfulRun") or {}).get("completionTime")
        age = (
            human_age(
                (now - dt.datetime.fromisoformat(good.replace("Z", "+00:00"))).total_seconds()
            )
            if good
            else "never"
        )
        rows.append(
            {
                "client": obj["metadata"]["name"],
                "Ready": conds.get("Ready", {}).get("status", "?"),
                "mode": (obj["spec"].get("ingestion") or {}).get("mode", "cdc"),
                "last run": (status.get("lastRun") or {}).get("phase", "none"),
                "last published": age,
                "slot WAL": (status.get("replicationSlot") or {}).get("retainedWal", ""),
                "tables": ", ".join(obj["spec"]["source"]["postgres"]["tables"]),
            }
        )
    st.dataframe(rows, hide_index=True, use_container_width=True)
    if not items:
        return
    chosen = st.selectbox("Client", [r["client"] for r in rows])
    obj = next(i for i in items if i["metadata"]["name"] == chosen)
    st.code("\n".join(status_lines(obj, now)), language=None)
    events = client.CoreV1Api(api).list_namespaced_event(
        NAMESPACE, field_selector=f"involvedObject.name={chosen}"
    )
    with st.expander("Events"):
        for e in sorted(events.items, key=lambda e: str(e.last_timestamp or e.event_time)):
            st.write(f"{e.type} {e.reason}: {e.message}")
    st.subheader("Actions")
    action = st.selectbox("Action", ["run now", "suspend", "resume"])
    if st.checkbox(f"I confirm: {action} {chosen}") and st.button("Do it"):
        _act(api, chosen, action)
        st.success(f"{action}: asked")


def _act(api: client.ApiClient, name: str, action: str) -> None:
    objects = client.CustomObjectsApi(api)
    if action == "run now":
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body: dict[str, Any] = {"metadata": {"annotations": {requests.RUN_NOW: stamp}}}
    else:
        body = {"spec": {"transform": {"suspend": action == "suspend"}}}
    objects.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name, body)


def main() -> None:
    st.set_page_config(page_title="Client pipelines", layout="wide")
    page = st.sidebar.radio("Page", ["New client", "Clients"])
    if page == "New client":
        new_client()
    else:
        clients()


main()
