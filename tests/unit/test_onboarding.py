"""The onboarding app's logic: form -> values -> the CRD's own checks (pure)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from clientpipelines.app import onboarding
from clientpipelines.app.onboarding import Submission

SUB = Submission(
    client_id="acme-health",
    host="db.acme",
    database="omop",
    tables=("person", "provider"),
    username="cdc",
    password="s3cret",
)


def _pipeline(**changes: object) -> dict[str, object]:
    """What the chart makes of the values, as far as the checks go."""
    sub = Submission(**{**SUB.__dict__, **changes})  # type: ignore[arg-type]
    v = onboarding.values(sub)
    return {
        "apiVersion": "pipelines.promptly.io/v1alpha1",
        "kind": "ClientPipeline",
        "metadata": {"name": v["clientId"]},
        "spec": {
            "source": {
                "postgres": {
                    "host": sub.host,
                    "port": sub.port,
                    "database": sub.database,
                    "schema": sub.schema,
                    "tables": list(sub.tables),
                    "sslMode": sub.ssl_mode,
                    "credentialsSecretRef": {"name": sub.secret_name},
                }
            },
            "ingestion": {"mode": sub.mode},
            "transform": {"schedule": sub.schedule},
            "deletionPolicy": sub.deletion_policy,
        },
    }


def test_values_never_hold_a_credential() -> None:
    text = onboarding.values_file(SUB)
    assert "s3cret" not in text and "username" not in yaml.safe_load(text)["source"]
    assert yaml.safe_load(text)["source"]["credentialsSecretName"] == "acme-health-db"


def test_a_valid_client_passes_the_crds_checks() -> None:
    assert onboarding.field_errors(_pipeline()) == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"client_id": "Acme_Health"}, "client_id"),
        ({"client_id": "a" * 44}, "client_id"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"tables": ("person", "not_a_cdm_table")}, "tables"),
        ({"port": 70000}, "port"),
        ({"mode": "batch"}, "mode"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, object], field: str) -> None:
    assert field in onboarding.field_errors(_pipeline(**change))


def test_the_schedule_is_read_out() -> None:
    assert "15 minutes" in onboarding.cron_text("*/15 * * * *")
    assert onboarding.cron_text("not a cron") == ""


def test_a_proposal_is_one_commit_on_a_new_branch_and_never_overwrites(tmp_path: Path) -> None:
    remote = tmp_path / "gitops.git"
    seed = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "clone", "-q", str(remote), str(seed)], check=True)
    (seed / "README.md").write_text("gitops\n")
    for args in (
        ["add", "README.md"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
        ["push", "-q", "origin", "HEAD:main"],
    ):
        subprocess.run(["git", *args], cwd=seed, check=True)

    proposal = onboarding.propose(SUB, str(remote))
    assert proposal.branch == "onboard/acme-health"
    shown = subprocess.run(
        ["git", "show", f"{proposal.branch}:{proposal.path}"],
        cwd=remote,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == onboarding.values_file(SUB)
    with pytest.raises(FileExistsError, match="proposal is waiting"):
        onboarding.propose(SUB, str(remote))


def test_forge_requests_follow_their_documented_shape() -> None:
    proposal = onboarding.Proposal("onboard/acme-health", "abc", "clients/acme-health/values.yaml")
    gh = onboarding.github_pull_request(
        "https://api.github.com", "org/gitops", "t0k", proposal, "main", "text"
    )
    assert (gh.method, gh.url) == ("POST", "https://api.github.com/repos/org/gitops/pulls")
    assert gh.body["head"] == "onboard/acme-health" and gh.body["base"] == "main"
    assert gh.headers["Authorization"] == "Bearer t0k"
    gl = onboarding.gitlab_merge_request(
        "https://gitlab.example/api/v4", "org/gitops", "t0k", proposal, "main", "text"
    )
    assert gl.url == "https://gitlab.example/api/v4/projects/org%2Fgitops/merge_requests"
    assert gl.body["source_branch"] == "onboard/acme-health"


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"password": "${ENV:LAKE_S3_SECRET_KEY}"}, "password", "contains '${'"),
        ({"username": "cdc\nx"}, "username", "control character"),
        ({"password": ""}, "password", "is needed"),
        ({"host": "cdc:hunter2@db.acme"}, "host", "Credentials fields"),
        ({"host": "postgres://db.acme"}, "host", "a host name only"),
        ({"tables": ()}, "tables", "at least one table"),
    ],
)
def test_what_the_crd_cannot_see_is_refused_by_field(
    change: dict[str, object], field: str, text: str
) -> None:
    sub = Submission(**{**SUB.__dict__, **change})  # type: ignore[arg-type]
    errors = onboarding.submission_errors(sub)
    assert field in errors and text in errors[field], errors
    assert onboarding.submission_errors(SUB) == {}
