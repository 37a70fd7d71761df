"""The onboarding app (Streamlit): `clientpipelines-app`, or `streamlit run` on this file.

The page logic only: what a form becomes, how it is checked and where it goes are
in clientpipelines.app.onboarding; what the operator would create is the
operator's own builders (clientpipelines.cli.preview_lines).

Settings (environment):
- KUBECONFIG, or in-cluster: the app's own ServiceAccount (chart: app.enabled) may
  create Secrets (never read, change or delete them), create (and dry-run), read
  and patch ClientPipelines, and read Events, in CLIENTS_NAMESPACE only.
- CLIENTS_NAMESPACE (default `clients`): where clients' pipelines and Secrets live.
- GITOPS_REMOTE: a git URL the app may push branches to; GITOPS_BASE (default `main`).
- HELM (default `helm`), CLIENT_CHART (the client-pipeline chart's folder): the
  values are rendered by the chart itself, as ArgoCD renders them.
- FORGE (`github`, `gitlab`, or empty: the branch is left for review), FORGE_API,
  FORGE_REPOSITORY, FORGE_TOKEN (from a Secret): open a pull/merge request.
- DIRECT_APPLY=1: create the ClientPipeline in the cluster instead of proposing it in
  git (clusters without GitOps).
- TRUSTED_USER_HEADER (e.g. `X-Forwarded-Email`): the header the cluster's auth proxy
  (oauth2-proxy) sets after authenticating the user. When set, a request without it
  may look but not act, and the user is recorded as the commit's author and on the
  Secret. In a cluster (KUBERNETES_SERVICE_HOST set) it must be set. The proxy must
  replace any copy of the header a client sends, and be the only way to reach the
  app (the chart's Service is ClusterIP, its NetworkPolicy admits only the proxy).
- TRINO_HOST, TRINO_PORT: when set, the clients page shows published row counts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import urllib.request
from pathlib import Path
from typing import Any

import streamlit as st
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from clientpipelines import omop
from clientpipelines.app import onboarding
from clientpipelines.app.onboarding import Submission
from clientpipelines.cli import (
    human_age,
    managed_by_argocd,
    preview_lines,
    preview_settings,
    published_counts,
)
from clientpipelines.cli import status_lines as pipeline_status_lines
from clientpipelines.manifests import GROUP, PLURAL, VERSION
from clientpipelines.operator import requests

NAMESPACE = os.environ.get("CLIENTS_NAMESPACE", "clients")
CHART = Path(
    os.environ.get("CLIENT_CHART", Path(__file__).parents[3] / "charts" / "client-pipeline")
)
# The form's fields and their starting values: the Submission's own defaults.
DEFAULTS: dict[str, Any] = {
    f.name: (f.default if f.default is not dataclasses.MISSING else ("" if f.type == "str" else []))
    for f in dataclasses.fields(Submission)
}
DEFAULTS["tables"] = []
CREDENTIALS = ("username", "password")


@st.cache_resource
def _api() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def _user() -> str | None:
    """The user the auth proxy vouches for, or None when no proxy is configured."""
    header = os.environ.get("TRUSTED_USER_HEADER")
    return st.context.headers.get(header) if header else None


def _may_act() -> bool:
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("TRUSTED_USER_HEADER"):
        # In a cluster the app acts only for users the auth proxy vouches for.
        st.error("Refused: the app runs in a cluster without TRUSTED_USER_HEADER set.")
        return False
    if os.environ.get("TRUSTED_USER_HEADER") and not _user():
        st.error(
            "Refused: this request did not come through the cluster's auth proxy "
            f"(no {os.environ['TRUSTED_USER_HEADER']} header)."
        )
        return False
    return True


def _submission() -> Submission:
    s = st.session_state
    chosen = set(s["tables"])
    return Submission(
        **{k: s[k] for k in DEFAULTS if k != "tables"},
        # The CDM's order, whatever order they were picked in: stable files in git.
        tables=tuple(t for t in omop.load() if t in chosen),
    )


@st.cache_data(show_spinner=False, max_entries=256)
def _rendered(public_json: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The chart's ClientPipeline for the form, or the chart's refusal by field (no
    credentials in the cache key)."""
    fields = json.loads(public_json)
    sub = Submission(**{**fields, "tables": tuple(fields["tables"])})
    try:
        helm = Path(os.environ.get("HELM", "helm"))
        return onboarding.render(sub, helm, CHART, NAMESPACE), {}
    except onboarding.RenderError as exc:
        return None, {exc.field: str(exc)}


def _check(sub: Submission) -> tuple[dict[str, Any] | None, dict[str, str]]:
    public = {k: v for k, v in dataclasses.asdict(sub).items() if k not in CREDENTIALS}
    pipeline, refused = _rendered(json.dumps(public))
    errors = onboarding.submission_errors(sub)
    if pipeline is None:
        return None, {**refused, **errors}
    return pipeline, {**onboarding.field_errors(pipeline), **errors}


def _plain(text: str) -> str:
    """`text` shown as written: Streamlit renders messages as Markdown, and rules'
    messages hold regular expressions."""
    return "".join(f"\\{c}" if c in "\\`*_{}[]()#+-.!|$<>~" else c for c in text)


def _show_error(errors: dict[str, str], name: str) -> None:
    """A field's error, once it was edited (as you type) or a submit was tried."""
    edited = st.session_state[name] != DEFAULTS[name]
    if name in errors and (edited or st.session_state.get("submit_tried")):
        st.error(_plain(errors[name]), icon=":material/error:")


def _table_label(name: str) -> str:
    text = omop.table(name).description
    return f"{name}: {text[:90]}…" if len(text) > 90 else f"{name}: {text}"


def new_client() -> None:
    st.header("New client")
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    if st.session_state.pop("clear_credentials", False):
        for key in CREDENTIALS:  # never shown again once written
            st.session_state[key] = ""
    for kind, text in st.session_state.pop("outcome", []):
        getattr(st, kind)(_plain(text))

    sub = _submission()
    pipeline, errors = _check(sub)
    st.text_input("Client id", key="client_id", help="lowercase letters, digits and '-'")
    _show_error(errors, "client_id")
    left, right = st.columns([3, 1])
    left.text_input("Source host", key="host")
    right.number_input("Port", key="port", min_value=1, max_value=65535)
    _show_error(errors, "host")
    _show_error(errors, "port")
    left, right = st.columns(2)
    left.text_input("Database", key="database")
    right.text_input("Schema", key="schema")
    _show_error(errors, "database")
    _show_error(errors, "schema")
    st.multiselect(
        f"Tables (OMOP CDM v{omop.CDM_VERSION})",
        options=list(omop.load()),
        key="tables",
        format_func=_table_label,
        placeholder="Choose the client's CDM tables",
    )
    _show_error(errors, "tables")
    left, right = st.columns(2)
    left.selectbox("Ingestion", ["cdc", "full-reload"], key="mode")
    right.selectbox(
        "TLS to the source", ["require", "verify-ca", "verify-full", "disable"], key="ssl_mode"
    )
    left, right = st.columns(2)
    left.text_input("Schedule (cron)", key="schedule")
    right.text_input("Time zone (IANA, empty: the cluster's)", key="time_zone")
    st.caption(onboarding.cron_text(sub.schedule) or "not a schedule cron can read")
    _show_error(errors, "schedule")
    _show_error(errors, "time_zone")
    st.radio("Deletion policy", ["Retain", "Delete"], key="deletion_policy", horizontal=True)

    st.subheader("Credentials")
    st.caption(
        "Written to a Kubernetes Secret labelled for this client: never to git, never shown again."
    )
    left, right = st.columns(2)
    left.text_input("Database user", key="username", autocomplete="off")
    right.text_input("Password", key="password", type="password", autocomplete="new-password")
    _show_error(errors, "username")
    _show_error(errors, "password")

    if pipeline is not None and not errors:
        with st.expander("What the operator will create", expanded=True):
            st.code("\n".join(preview_lines(pipeline, preview_settings())), language=None)

    if st.button("Submit", type="primary"):
        st.session_state["submit_tried"] = True
        if errors or pipeline is None:
            st.session_state["outcome"] = [
                ("error", "Nothing was written: fix the fields marked below.")
            ]
        else:
            st.session_state["outcome"] = _submit(sub, pipeline)
        st.rerun()


def _submit(sub: Submission, pipeline: dict[str, Any]) -> list[tuple[str, str]]:
    """Write the client. Every check first (the API server's dry-runs of the
    ClientPipeline and the Secret, the git remote), then the branch (or the
    ClientPipeline), then the Secret. The app may not delete a Secret, so the Secret
    comes last: when it cannot be written, the branch is deleted again."""
    if not _may_act():
        return [("error", "Nothing was written: not authenticated by the auth proxy.")]
    user, api = _user(), _api()
    direct = os.environ.get("DIRECT_APPLY") == "1"
    remote = os.environ.get("GITOPS_REMOTE", "")
    try:
        onboarding.check_in_cluster(api, pipeline, NAMESPACE)
        # A proposal waiting for review says more than the Secret it already made.
        if not direct:
            onboarding.check_proposable(sub, remote, base=_base())
        onboarding.write_secret(api, sub, NAMESPACE, user, dry_run=True)
    except Exception as exc:
        return [("error", f"Nothing was written: {exc}")]
    shown: list[tuple[str, str]] = []
    try:
        if direct:
            onboarding.apply_pipeline(api, pipeline, NAMESPACE)
            shown.append(("success", f"ClientPipeline {NAMESPACE}/{sub.client_id} created."))
        else:
            author = f"{user} <{user}>" if user and "@" in user else None
            proposal = onboarding.propose(
                sub, remote, base=_base(), **({"author": author} if author else {})
            )
            shown.append(
                (
                    "success",
                    f"Branch {proposal.branch} pushed ({proposal.commit[:12]}): {proposal.path}",
                )
            )
    except Exception as exc:
        return [("error", f"Nothing was written: {exc}")]
    try:
        onboarding.write_secret(api, sub, NAMESPACE, user)
    except Exception as exc:
        if direct:
            return [
                *shown,
                ("error", f"The Secret was not written ({exc}): the pipeline waits for it."),
            ]
        try:
            onboarding.withdraw(sub, remote)
        except Exception as again:
            return [*shown, ("error", f"The Secret was not written ({exc}); {again}")]
        return [("error", f"Nothing was written (the branch was deleted again): {exc}")]
    st.session_state["clear_credentials"] = True
    shown.append(("success", f"Secret {NAMESPACE}/{sub.secret_name} created."))
    forge = os.environ.get("FORGE", "")
    if direct:
        return shown
    if not forge:
        shown.append(("info", "No forge is configured: review and merge the branch."))
        return shown
    try:
        url = _open_pull_request(forge, sub, proposal, pipeline)
        shown.append(("success", f"Pull request: {url}"))
    except Exception as exc:
        shown.append(("warning", f"The branch is pushed but the pull request failed: {exc}"))
    return shown


def _base() -> str:
    return os.environ.get("GITOPS_BASE", "main")


def _open_pull_request(
    forge: str, sub: Submission, proposal: onboarding.Proposal, pipeline: dict[str, Any]
) -> str:
    text = onboarding.describe(sub, preview_lines(pipeline, preview_settings()))
    build = onboarding.github_pull_request if forge == "github" else onboarding.gitlab_merge_request
    req = build(
        os.environ["FORGE_API"],
        os.environ["FORGE_REPOSITORY"],
        os.environ["FORGE_TOKEN"],
        proposal,
        _base(),
        text,
    )
    http = urllib.request.Request(  # noqa: S310 - the configured forge's https URL
        req.url,
        json.dumps(req.body).encode(),
        {**req.headers, "Content-Type": "application/json"},
        method=req.method,
    )
    with urllib.request.urlopen(http, timeout=30) as resp:  # noqa: S310
        body = json.loads(resp.read())
    return str(body.get("html_url") or body.get("web_url") or "")


# -- clients --------------------------------------------------------------------------------


@st.cache_data(ttl=60, show_spinner=False)
def _published_rows(obj_json: str) -> str:
    """The client's published rows in all its tables, from Trino (a minute's cache:
    the page re-runs on every click)."""
    trino = os.environ.get("TRINO_HOST")
    if not trino:
        return ""
    lines = published_counts(
        json.loads(obj_json), f"{trino}:{os.environ.get('TRINO_PORT', '8080')}"
    )
    counts = [int(m.group(1)) for line in lines if (m := re.search(r": (\d+) rows$", line))]
    return f"{sum(counts)} in {len(counts)} tables" if counts else "none readable"


def _row(obj: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    status = obj.get("status") or {}
    conds = {c["type"]: c for c in status.get("conditions") or []}
    good = (status.get("lastSuccessfulRun") or {}).get("completionTime")
    since = (
        human_age((now - dt.datetime.fromisoformat(good.replace("Z", "+00:00"))).total_seconds())
        if good
        else None
    )
    run = status.get("lastRun") or {}
    return {
        "client": obj["metadata"]["name"],
        "Ready": conds.get("Ready", {}).get("status", "Unknown"),
        "reason": conds.get("Ready", {}).get("reason", ""),
        "mode": (obj["spec"].get("ingestion") or {}).get("mode", "cdc"),
        "last run": f"{run['phase']} ({run['job']})" if run else "none yet",
        "published": f"{since} ago" if since else "never",
        "slot WAL": (status.get("replicationSlot") or {}).get("retainedWal", ""),
        "tables": ", ".join(obj["spec"]["source"]["postgres"]["tables"]),
        "published rows": _published_rows(
            json.dumps(
                {
                    "metadata": {k: obj["metadata"][k] for k in ("name", "namespace")},
                    "spec": obj["spec"],
                }
            )
        ),
    }


def clients() -> None:
    st.header("Clients")
    api = _api()
    listed: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL
    )
    items: list[dict[str, Any]] = listed["items"]
    now = dt.datetime.now(dt.UTC)
    rows = [_row(obj, now) for obj in items]
    st.table(rows)  # a plain table: readable by screen readers (and by the browser tests)
    if not items:
        st.info(f"No ClientPipeline in namespace {NAMESPACE} yet.")
        return
    chosen = st.selectbox("Client", [r["client"] for r in rows], key="client")
    obj = next(i for i in items if i["metadata"]["name"] == chosen)
    lines = pipeline_status_lines(obj, now)
    trino = os.environ.get("TRINO_HOST")
    if trino:
        lines += published_counts(obj, f"{trino}:{os.environ.get('TRINO_PORT', '8080')}")
    st.code("\n".join(lines), language=None)
    events = client.CoreV1Api(api).list_namespaced_event(
        NAMESPACE, field_selector=f"involvedObject.name={chosen}"
    )
    with st.expander(f"Events ({len(events.items)})"):
        for e in sorted(events.items, key=lambda e: str(e.last_timestamp or e.event_time)):
            st.text(f"{e.type} {e.reason}: {e.message}")

    st.subheader("Actions")
    if managed_by_argocd(obj):
        st.caption(
            "ArgoCD manages this pipeline: with self-heal it undoes suspend/resume; "
            "change spec.transform.suspend in git to make it last."
        )
    action = st.selectbox("Action", ["run now", "suspend", "resume"], key="action")
    confirmed = st.checkbox(f"I confirm: {action} {chosen}", key="confirm")
    if st.button("Do it", disabled=not confirmed) and _may_act():
        try:
            _act(api, chosen, action)
            st.success(f"{action} {chosen}: asked; the operator acts on it")
        except ApiException as exc:
            st.error(f"{action} {chosen} was refused: {exc.reason}")


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
    pages = [
        st.Page(new_client, title="New client", default=True),
        st.Page(clients, title="Clients", url_path="clients"),
    ]
    st.navigation(pages).run()


main()
