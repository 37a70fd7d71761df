"""Onboarding a client, without the UI: what the form becomes, how it is checked, and
how it reaches the GitOps repository.

The form's answers become the client-pipeline chart's values (what
`clients/<id>/values.yaml` holds); the chart renders them into the ClientPipeline,
so the mapping is the chart's and written nowhere else. That object is checked
against the CRD's own schema (types, enums, bounds, patterns, and the CEL rules
that are regular expressions), the same rules the API server enforces at
admission; a server-side dry-run before submitting checks the rest.

Credentials never go to git: they become a Kubernetes Secret labelled for the
client, which the operator alone may read.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from clientpipelines.manifests import CRD_PATH, GROUP, LABEL_CLIENT, PLURAL, VERSION
from clientpipelines.operator.systems import unsafe_credential

# The form's fields, by the path of what they become in the ClientPipeline.
FIELD_OF_PATH = {
    "metadata.name": "client_id",
    "spec.source.postgres.host": "host",
    "spec.source.postgres.port": "port",
    "spec.source.postgres.database": "database",
    "spec.source.postgres.schema": "schema",
    "spec.source.postgres.tables": "tables",
    "spec.source.postgres.sslMode": "ssl_mode",
    "spec.ingestion.mode": "mode",
    "spec.transform.schedule": "schedule",
    "spec.transform.timeZone": "time_zone",
    "spec.deletionPolicy": "deletion_policy",
}


@dataclass(frozen=True)
class Submission:
    """What a platform engineer enters for a new client."""

    client_id: str
    host: str
    database: str
    tables: tuple[str, ...]
    port: int = 5432
    schema: str = "public"
    ssl_mode: str = "require"
    mode: str = "cdc"
    schedule: str = "*/15 * * * *"
    time_zone: str = ""
    deletion_policy: str = "Retain"
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @property
    def secret_name(self) -> str:
        return f"{self.client_id}-db"


def values(sub: Submission) -> dict[str, Any]:
    """The client-pipeline chart's values for `sub`: clients/<id>/values.yaml (pure).

    No credential: the chart only names the Secret.
    """
    return {
        "clientId": sub.client_id,
        "source": {
            "host": sub.host,
            "port": sub.port,
            "database": sub.database,
            "schema": sub.schema,
            "tables": list(sub.tables),
            "sslMode": sub.ssl_mode,
            "credentialsSecretName": sub.secret_name,
        },
        "ingestion": {"mode": sub.mode},
        "transform": {"schedule": sub.schedule, "timeZone": sub.time_zone},
        "deletionPolicy": sub.deletion_policy,
    }


def values_file(sub: Submission) -> str:
    """The text committed as clients/<id>/values.yaml (pure)."""
    header = (
        f"# {sub.client_id}: the client-pipeline chart's values, from the onboarding app.\n"
        f"# Its credentials are the Secret {sub.secret_name} (labelled {LABEL_CLIENT}="
        f"{sub.client_id}), created by the app in the cluster, never committed.\n"
    )
    return header + yaml.safe_dump(values(sub), sort_keys=False)


# The chart's values, by the form field they come from (what the chart's own
# values.schema.json refuses is shown at that field).
FIELD_OF_VALUE = {
    "clientId": "client_id",
    "source.host": "host",
    "source.port": "port",
    "source.database": "database",
    "source.schema": "schema",
    "source.tables": "tables",
    "source.sslMode": "ssl_mode",
    "ingestion.mode": "mode",
    "transform.schedule": "schedule",
    "transform.timeZone": "time_zone",
    "deletionPolicy": "deletion_policy",
}
_SCHEMA_ERROR = re.compile(r"^- at '/([^']*)': (.*)$")


class RenderError(ValueError):
    """The chart refused the values; `field` is the form's field it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def render(sub: Submission, helm: Path, chart: Path, namespace: str) -> dict[str, Any]:
    """The ClientPipeline the chart makes of `sub`'s values (`helm template`)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(values(sub), file)
        file.flush()
        out = subprocess.run(
            # The release name is Argo CD's Application name; the object's name is the
            # clientId value (checked by the CRD's rules, not by helm's).
            [str(helm), "template", "client", str(chart), "-n", namespace, "-f", file.name],
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["helm template failed"])[-1]
        if match := _SCHEMA_ERROR.match(last):
            path = match.group(1).replace("/", ".")
            path = re.sub(r"\.\d+$", "", path)  # an item of a list: the list's field
            raise RenderError(FIELD_OF_VALUE.get(path, path), f"{path}: {match.group(2)}")
        raise RenderError("client_id", last)
    (pipeline,) = [
        d for d in yaml.safe_load_all(out.stdout) if d and d.get("kind") == "ClientPipeline"
    ]
    # What `kubectl apply -n` (and ArgoCD's destination namespace) gives it.
    pipeline["metadata"].setdefault("namespace", namespace)
    return dict(pipeline)


# -- checks against the CRD ------------------------------------------------------------------

_MATCHES = re.compile(r"^self\.matches\(r?'(.*)'\)$", re.S)


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_PATH.read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def _regex_rules(schema: Mapping[str, Any], path: str) -> list[tuple[str, str, str]]:
    """(path, RE2 pattern, message) of every CEL rule that is `self.matches(...)`."""
    found = []
    for rule in schema.get("x-kubernetes-validations") or []:
        match = _MATCHES.match(rule["rule"])
        if match:
            found.append((path, match.group(1), rule.get("message", "")))
    for key, sub in (schema.get("properties") or {}).items():
        found += _regex_rules(sub, f"{path}.{key}" if path else key)
    return found


def _at(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return None
        obj = obj[part]
    return obj


def field_errors(pipeline: Mapping[str, Any]) -> dict[str, str]:
    """Form field -> the first thing the CRD refuses about it (pure over the CRD file).

    Structural rules (types, enums, bounds, patterns) by JSON Schema; the CEL rules
    that are regular expressions (the schedule, the name) by Python's re, which
    reads these RE2 patterns the same way. Rules about changes (immutability) do
    not apply to a new object.
    """
    schema = _schema()
    errors: dict[str, str] = {}
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(dict(pipeline)), key=lambda e: list(e.path)):
        path = ".".join(str(p) for p in error.path if not isinstance(p, int))
        name = FIELD_OF_PATH.get(path, path)
        errors.setdefault(name, f"{path}: {error.message}")
    name = str(_at(pipeline, "metadata.name") or "")
    if len(name) > 43:
        errors.setdefault("client_id", "metadata.name: a client id has at most 43 characters")
    if not re.match(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", name):
        errors.setdefault(
            "client_id",
            "metadata.name: lowercase letters, digits and '-', starting with a letter",
        )
    for path, pattern, message in _regex_rules(schema, ""):
        value = _at(pipeline, path)
        if isinstance(value, str) and not re.match(pattern, value):
            errors.setdefault(FIELD_OF_PATH.get(path, path), message or f"{path}: invalid")
    return errors


def submission_errors(sub: Submission) -> dict[str, str]:
    """What must be fixed before submitting, beyond the CRD's rules (pure).

    The credentials are checked by the operator's own rule (it refuses a Secret with
    such values, `SecretNotAllowed`): a value that Trino or Kafka Connect would expand,
    like `${ENV:...}`, is refused here before anything is written.
    """
    errors = {}
    if "@" in sub.host or "://" in sub.host:
        # A connection URL with its login: it would go to git with the values.
        errors["host"] = (
            "a host name only: the login goes in the Credentials fields (a Secret), "
            "never into the values committed to git"
        )
    if not sub.tables:
        errors["tables"] = "choose at least one table"
    for name, value in (("username", sub.username), ("password", sub.password)):
        if not value:
            errors[name] = f"the database {name} is needed (it goes to a Secret, never to git)"
        elif why := unsafe_credential(value):
            errors[name] = f"the {name} {why}: the operator would refuse it"
    return errors


def cron_text(schedule: str) -> str:
    """A human reading of the schedule (cron-descriptor); '' when it cannot be read."""
    from cron_descriptor import (  # type: ignore[import-untyped]  # noqa: PLC0415
        get_description,
    )

    try:
        return str(get_description(schedule))
    except Exception:
        return ""


ONBOARDED_BY = "pipelines.promptly.io/onboarded-by"


def secret_manifest(sub: Submission, namespace: str, user: str | None = None) -> dict[str, Any]:
    """The client's credentials Secret, labelled so the operator may use it (pure)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": sub.secret_name,
            "namespace": namespace,
            "labels": {LABEL_CLIENT: sub.client_id},
            "annotations": {ONBOARDED_BY: user or "unknown"},
        },
        "type": "Opaque",
        "stringData": {"username": sub.username, "password": sub.password},
    }


# -- the cluster ----------------------------------------------------------------------------


class Refused(Exception):
    """The cluster refused the client (nothing was written); the message says why."""


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


def check_in_cluster(api: client.ApiClient, pipeline: Mapping[str, Any], namespace: str) -> None:
    """The API server's own verdict on the ClientPipeline (server-side dry-run: every
    admission rule, CEL included), and that the name is free. Writes nothing."""
    objects = client.CustomObjectsApi(api)
    try:
        objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, dict(pipeline), dry_run="All"
        )
    except ApiException as exc:
        if exc.status == 409:
            raise Refused(
                f"a ClientPipeline {pipeline['metadata']['name']} exists in {namespace}"
            ) from None
        raise Refused(f"the API server refused it: {_api_message(exc)}") from None


def write_secret(
    api: client.ApiClient,
    sub: Submission,
    namespace: str,
    user: str | None,
    *,
    dry_run: bool = False,
) -> None:
    """Create the credentials Secret (with `dry_run`, only ask whether it could be).
    Never replaces one: the app may create Secrets but never read, change or delete
    them (chart: app RBAC), so it cannot tell whose an existing one is; a name that
    is taken is refused."""
    try:
        client.CoreV1Api(api).create_namespaced_secret(
            namespace,
            secret_manifest(sub, namespace, user),  # type: ignore[arg-type]  # a dict is accepted
            dry_run="All" if dry_run else None,
        )
    except ApiException as exc:
        if exc.status == 409:
            raise Refused(
                f"a Secret {sub.secret_name} exists in {namespace}: choose another client id, "
                "or have an administrator remove it"
            ) from None
        raise Refused(f"the Secret was refused: {_api_message(exc)}") from None


def apply_pipeline(api: client.ApiClient, pipeline: Mapping[str, Any], namespace: str) -> None:
    """Direct apply (clusters without GitOps): create the ClientPipeline."""
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, dict(pipeline)
        )
    except ApiException as exc:
        raise Refused(f"the API server refused it: {_api_message(exc)}") from None


# -- git ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    branch: str
    commit: str
    path: str


def _git(*args: str, cwd: Path) -> str:
    # A remote that stops answering must not hang the submission forever.
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"git {args[0]}: no answer within 120 s") from None
    if out.returncode != 0:
        raise RuntimeError(f"git {args[0]}: {out.stderr.strip()}")
    return out.stdout.strip()


@contextlib.contextmanager
def _checkout(remote: str, base: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "repo"
        _git("clone", "--quiet", "--depth", "1", "--branch", base, remote, str(work), cwd=Path(tmp))
        yield work


def _taken(sub: Submission, work: Path, base: str) -> str | None:
    """Why the client cannot be proposed: its folder is on `base`, or its branch exists."""
    if (work / "clients" / sub.client_id).exists():
        return f"clients/{sub.client_id}/ exists on {base}: the client is onboarded already"
    if _git("ls-remote", "--heads", "origin", _branch(sub), cwd=work):
        return f"branch {_branch(sub)} exists: a proposal is waiting for review"
    return None


def _branch(sub: Submission) -> str:
    return f"onboard/{sub.client_id}"


def check_proposable(sub: Submission, remote: str, *, base: str = "main") -> None:
    """FileExistsError when `propose` would refuse; writes nothing."""
    with _checkout(remote, base) as work:
        if why := _taken(sub, work, base):
            raise FileExistsError(why)


def propose(
    sub: Submission,
    remote: str,
    *,
    base: str = "main",
    author: str = "Onboarding app <onboarding@clientpipelines.local>",
) -> Proposal:
    """Commit clients/<id>/values.yaml on a new branch `onboard/<id>` and push it.

    Refused when the client already has a folder on `base` or the branch exists:
    onboarding never overwrites a client.
    """
    branch, path = _branch(sub), f"clients/{sub.client_id}/values.yaml"
    with _checkout(remote, base) as work:
        if why := _taken(sub, work, base):
            raise FileExistsError(why)
        _git("checkout", "--quiet", "-b", branch, cwd=work)
        (work / path).parent.mkdir(parents=True)
        (work / path).write_text(values_file(sub))
        _git("add", path, cwd=work)
        name, _, email = author.partition(" <")
        _git(
            "-c",
            f"user.name={name}",
            "-c",
            f"user.email={email.rstrip('>')}",
            "commit",
            "--quiet",
            "-m",
            f"Onboard client {sub.client_id}",
            cwd=work,
        )
        commit = _git("rev-parse", "HEAD", cwd=work)
        # Never a force push: a branch that appeared meanwhile makes this fail.
        _git("push", "--quiet", "origin", f"{branch}:refs/heads/{branch}", cwd=work)
    return Proposal(branch, commit, path)


def withdraw(sub: Submission, remote: str) -> None:
    """Delete the proposal's branch again (its Secret could not be written)."""
    with tempfile.TemporaryDirectory() as tmp:
        _git("init", "--quiet", cwd=Path(tmp))
        _git("push", "--quiet", remote, "--delete", _branch(sub), cwd=Path(tmp))


# -- forges ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForgeRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


def github_pull_request(
    api: str, repository: str, token: str, proposal: Proposal, base: str, text: str
) -> ForgeRequest:
    """POST /repos/{owner}/{repo}/pulls (GitHub's REST API), as documented (pure)."""
    return ForgeRequest(
        "POST",
        f"{api.rstrip('/')}/repos/{repository}/pulls",
        {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
        },
        {
            "title": f"Onboard client {proposal.path.split('/')[1]}",
            "head": proposal.branch,
            "base": base,
            "body": text,
        },
    )


def gitlab_merge_request(
    api: str, project: str, token: str, proposal: Proposal, base: str, text: str
) -> ForgeRequest:
    """POST /projects/:id/merge_requests (GitLab's REST API v4), as documented (pure)."""
    from urllib.parse import quote  # noqa: PLC0415

    return ForgeRequest(
        "POST",
        f"{api.rstrip('/')}/projects/{quote(project, safe='')}/merge_requests",
        {"PRIVATE-TOKEN": token},
        {
            "source_branch": proposal.branch,
            "target_branch": base,
            "title": f"Onboard client {proposal.path.split('/')[1]}",
            "description": text,
            "remove_source_branch": True,
        },
    )


def describe(sub: Submission, preview: Sequence[str]) -> str:
    """The pull request's text: what the operator will create (pure)."""
    return (
        f"Onboards client `{sub.client_id}` from the onboarding app.\n\n"
        "After merge, ArgoCD's ApplicationSet creates its Application; the operator then "
        "creates:\n\n```\n" + "\n".join(preview) + "\n```\n"
    )
