"""Tenant isolation, enforced by Trino and Nessie themselves: each client's runs are
their own principal.

Two clients in two namespaces, onboarded by the operator. Their scheduled runs
(the CronJob's Pod, run by the local kubelet with its projected ServiceAccount
tokens) publish as before; client A's token then reaches A's data and nothing of
B's, whatever SQL it sends, and A's branches in Nessie and nothing of B's or of
main beyond merging A's own tables. Anonymous, forged, mis-addressed and
plaintext requests are refused by both.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client

from clientpipelines.clients.errors import ServiceError
from clientpipelines.clients.nessie import NessieClient, Reference
from clientpipelines.clients.trino import TrinoLogin
from clientpipelines.manifests import GROUP, PLURAL, VERSION
from clientpipelines.naming import MAIN_BRANCH, ClientNames
from clientpipelines.nessie_access import TOKEN_AUDIENCE as NESSIE_AUDIENCE
from clientpipelines.trino_access import TOKEN_AUDIENCE
from devstack.controlplane import ControlPlane
from devstack.demo import run_pipeline_once
from devstack.operator import (
    OperatorProcess,
    get_pipeline,
    pipeline_body,
    put_client_secret,
    wait_ready,
)
from devstack.pki import service_account_jwt
from devstack.procs import wait_for
from devstack.sampledata import SampleData
from devstack.services import NESSIE_PRINCIPALS, TRINO_OPERATOR
from devstack.stack import Endpoints, Stack
from devstack.wiring import unwire_client

pytestmark = pytest.mark.integration

ANALYST = "analyst-ana"


class Tenant:
    """One client in a namespace of its own, onboarded through the operator."""

    def __init__(self, api: client.ApiClient, stack: Stack, readers: tuple[str, ...] = ()) -> None:
        self.api = api
        self.id = f"t{uuid.uuid4().hex[:8]}"
        self.names = ClientNames(self.id)
        self.namespace = f"ns-{self.id}"
        client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace))
        )
        self.source = SampleData(stack).create(self.id, rows=30, seed=7)
        put_client_secret(api, self.namespace, f"{self.id}-db", self.source)
        body = pipeline_body(
            self.id, self.source, secret=f"{self.id}-db", tables=["provider", "care_site"]
        )
        if readers:
            body["spec"]["access"] = {"readers": list(readers)}
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body
        )

    @property
    def principal(self) -> str:
        return self.names.runner_principal(self.namespace)

    def token(self, audience: str = TOKEN_AUDIENCE) -> str:
        """A token of the client's ServiceAccount, as the kubelet mints it for its Pods."""
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[audience], expiration_seconds=600)
        )
        minted = client.CoreV1Api(self.api).create_namespaced_service_account_token(
            self.names.runner_service_account, self.namespace, request
        )
        return str(minted.status.token)

    def remove(self, stack: Stack) -> None:
        objects = client.CustomObjectsApi(self.api)
        try:
            objects.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.id)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        wait_for(
            f"the operator to delete {self.id}",
            lambda: get_pipeline(self.api, self.namespace, self.id) is None,
            timeout=120,
        )
        try:
            client.CoreV1Api(self.api).delete_namespace(self.namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        unwire_client(stack, self.id)


@pytest.fixture
def tenants(
    operator: OperatorProcess, kube_api: client.ApiClient, platform: Stack
) -> Iterator[tuple[Tenant, Tenant]]:
    made: list[Tenant] = []
    try:
        # B lets an analyst read its published tables.
        made = [Tenant(kube_api, platform), Tenant(kube_api, platform, readers=(ANALYST,))]
        yield made[0], made[1]
    finally:
        for tenant in made:
            tenant.remove(platform)


def as_token(endpoints: Endpoints, token: str, folder: Path) -> TrinoLogin:
    path = folder / f"token-{uuid.uuid4().hex[:6]}"
    path.write_text(token)
    return TrinoLogin(
        endpoints.trino_host,
        endpoints.trino_port,
        scheme="https",
        ca_file=endpoints.trino_ca_file,
        token_file=str(path),
    )


def denied(login: TrinoLogin, sql: str) -> str:
    """The refusal Trino gives `login` for `sql` (fails the test if it is allowed)."""
    with pytest.raises(ServiceError) as refused:
        login.client().query(sql)
    return str(refused.value)


def forged_token(subject: str, audience: str = TOKEN_AUDIENCE) -> str:
    """A well-formed token for the cluster's issuer and `audience`, signed by a key
    no service trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    return service_account_jwt(key, subject, audience, dt.timedelta(minutes=10))


def tampered(token: str) -> str:
    head, claims, signature = token.split(".")
    return f"{head}.{claims}.{signature[:-6]}{'A' * 6 if signature[-6:] != 'A' * 6 else 'B' * 6}"


# Two clients onboarded and run once each through the operator's CronJobs.
@pytest.mark.timeout(900)
def test_a_clients_runs_reach_its_own_data_and_nothing_of_another(
    tenants: tuple[Tenant, Tenant],
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    endpoints: Endpoints,
    tmp_path: Path,
) -> None:
    a, b = tenants
    for tenant in (a, b):
        wait_ready(kube_api, tenant.namespace, tenant.id)
    # Each run is the Pod of the client's CronJob, with its projected token: no
    # platform credential is in it, and it publishes as before.
    # B first: A's run then resets A's staging branch to a main that holds B's
    # tables, so B's data is in A's staging catalog too (below: out of A's reach).
    for tenant in (b, a):
        assert (
            run_pipeline_once(kube_api, control_plane.kubeconfig, tenant.id, tenant.namespace) == 0
        )
    admin = endpoints.trino()
    for tenant in (a, b):
        ((published,),) = admin.query(
            f"select count(*) from lake.{tenant.names.lake_schema}.provider"
        )
        assert published == 30

    login = as_token(endpoints, a.token(), tmp_path)
    assert login.credentials()[0] == a.principal
    ((own,),) = login.client().query(f"select count(*) from lake.{a.names.lake_schema}.provider")
    assert own == 30
    shown = {row[0] for row in login.client().query("show catalogs")}
    assert set(a.names.client_catalogs) & shown and "lake" in shown
    assert not set(b.names.client_catalogs) & shown

    # B's published tables, its staging and CDC catalogs, its source: denied.
    b_lake = f"lake.{b.names.lake_schema}.provider"
    assert "Access Denied" in denied(login, f"select count(*) from {b_lake}")
    for catalog in (b.names.staging_catalog, b.names.cdc_catalog):
        assert "Access Denied" in denied(login, f"show schemas from {catalog}")
    assert "Access Denied" in denied(login, f"drop catalog {b.names.cdc_catalog}")
    # A's staging catalog is the whole lake on A's branch: B's schemas are there,
    # and out of A's reach (a change there would be merged into B's tables).
    b_in_a = f"{a.names.staging_catalog}.{b.names.lake_schema}"
    ((there,),) = admin.query(f"select count(*) from {b_in_a}.provider")
    assert there == 30
    assert "Access Denied" in denied(login, f"select count(*) from {b_in_a}.provider")
    assert "Access Denied" in denied(login, f"create table {b_in_a}.sneak as select 1 as x")
    assert "Access Denied" in denied(login, f"drop table {b_in_a}.provider")
    # A's own data is read-only in `lake`: publishing is a Nessie merge of a
    # tested staging branch, never a write around it.
    assert "Access Denied" in denied(
        login, f"create table lake.{a.names.lake_schema}.sneak as select 1 as x"
    )
    # A does not see the statements of others (their text names other clients' tables).
    users = {row[0] for row in login.client().query('select "user" from system.runtime.queries')}
    assert users == {a.principal}

    # B's reader (a certificate of the platform's CA, CN = the user) reads B's
    # published tables, and nothing of A's or of B's pipeline.
    cert = Stack().pki.issue(f"trino-{ANALYST}", common_name=ANALYST)
    analyst = TrinoLogin(
        endpoints.trino_host,
        endpoints.trino_port,
        scheme="https",
        user=ANALYST,
        ca_file=endpoints.trino_ca_file,
        cert_file=str(cert.cert),
        key_file=str(cert.key),
    )
    ((read,),) = analyst.client().query(f"select count(*) from {b_lake}")
    assert read == 30
    a_lake = f"lake.{a.names.lake_schema}.provider"
    assert "Access Denied" in denied(analyst, f"select count(*) from {a_lake}")
    assert "Access Denied" in denied(analyst, f"show schemas from {b.names.staging_catalog}")

    # The operator manages catalogs and reads no data.
    operator = endpoints.trino_login(TRINO_OPERATOR)
    assert "Access Denied" in denied(operator, f"select count(*) from {b_lake}")

    # Who Trino does not know is refused before any rule: no credentials, a token
    # for another audience (the Kubernetes API's), a forged token with an admin's
    # name, A's own token with its signature altered.
    anonymous = replace(login, token_file=None)
    assert "authentication refused" in denied(anonymous, "select 1")
    for token in (
        a.token(audience="https://kubernetes.default.svc"),
        forged_token("admin"),
        tampered(a.token()),
    ):
        assert "authentication refused" in denied(as_token(endpoints, token, tmp_path), "select 1")

    # Plain HTTP (Trino's node-to-node port) takes no client's statement.
    plain = requests.post(
        f"http://127.0.0.1:{Stack().ports['trino_internal']}/v1/statement",
        data="select 1",
        headers={"X-Trino-User": "admin", "Authorization": f"Bearer {a.token()}"},
        timeout=10,
    )
    assert plain.status_code in (401, 403), plain.status_code
    unauthenticated = requests.post(
        f"http://127.0.0.1:{Stack().ports['trino_internal']}/v1/statement",
        data="select 1",
        headers={"X-Trino-User": "admin"},
        timeout=10,
    )
    assert unauthenticated.status_code in (401, 403), unauthenticated.status_code

    # Nessie, with A's token for it: A's runs were A there too (Nessie records who
    # committed), and A's token reaches A's branches and nothing else.
    assert_nessie_isolates(endpoints, a, b, tmp_path)

    # Deleting a client withdraws its grant: a token minted before (Trino checks its
    # signature and expiry, not whether the account still exists) reaches nothing.
    a.remove(Stack())

    def withdrawn() -> bool:
        try:
            login.client().query(f"select count(*) from lake.{a.names.lake_schema}.provider")
        except ServiceError as exc:
            return "Access Denied" in str(exc)
        return False

    wait_for("Trino to apply the rules without A's grant", withdrawn, timeout=15, interval=0.5)


def as_nessie(endpoints: Endpoints, token: str, folder: Path) -> NessieClient:
    path = folder / f"nessie-token-{uuid.uuid4().hex[:6]}"
    path.write_text(token)
    return NessieClient(endpoints.nessie_url, token_file=str(path))


def refused(call: Callable[[], object]) -> int:
    """The HTTP status Nessie refuses `call` with (fails the test if it is allowed)."""
    with pytest.raises(ServiceError) as refusal:
        call()
    return refusal.value.status


def put_key(
    nessie: NessieClient, branch: Reference, *elements: str, delete: bool = False
) -> Reference:
    """Commit a namespace at key `elements` to `branch` (or its deletion), as
    `nessie`'s principal."""
    key = {"elements": list(elements)}
    operation: dict[str, Any] = {"type": "DELETE", "key": key}
    if not delete:
        operation = {"type": "PUT", "key": key, "content": {"type": "NAMESPACE", **key}}
    body = {"commitMeta": {"message": "sneak"}, "operations": [operation]}
    resp = nessie.request("POST", f"/trees/{branch.name}@{branch.hash}/history/commit", json=body)
    return Reference(branch.name, resp.json()["targetBranch"]["hash"])


def assert_nessie_isolates(endpoints: Endpoints, a: Tenant, b: Tenant, folder: Path) -> None:
    admin = endpoints.nessie()
    committers = {
        c.message.split(" run ")[0]: c.committer for c in admin.log(MAIN_BRANCH, limit=50)
    }
    assert committers[f"publish {a.id}"] == a.principal
    assert committers[f"publish {b.id}"] == b.principal

    nessie = as_nessie(endpoints, a.token(NESSIE_AUDIENCE), folder)
    main = nessie.get_reference(MAIN_BRANCH)
    assert main is not None
    own = nessie.get_reference(a.names.staging_branch)
    assert own is not None
    # B's branches: not even visible; no commit to them, however it is addressed.
    b_staging = admin.get_reference(b.names.staging_branch)
    assert b_staging is not None
    assert refused(lambda: nessie.get_reference(b.names.staging_branch)) == 403
    assert refused(lambda: put_key(nessie, b_staging, "sneak")) == 403
    assert refused(lambda: nessie.delete_branch(b_staging)) == 403
    assert refused(lambda: nessie.create_branch(b.names.run_lock_branch, main)) == 403
    assert refused(lambda: nessie.create_branch("main-2", main)) == 403
    # Main: no assignment (a rollback or a jump to unchecked data), no commit to
    # B's schema, no deletion (Nessie keeps its default branch from anyone). (A
    # commit is a merge to Nessie's rules: A's own keys, A's runner gates by tests.)
    assert refused(lambda: nessie.assign_branch(main, own)) == 403
    assert refused(lambda: put_key(nessie, main, b.names.lake_schema, "sneak")) == 403
    assert refused(lambda: nessie.delete_branch(main)) in (400, 403)
    # A's branches start from main, so they hold B's published tables: A handles
    # them as references only, and reads no content on them (B's table metadata
    # would point Trino at B's files), nor writes any.
    b_key = f"{b.names.lake_schema}.provider"
    assert refused(lambda: nessie.request("GET", f"/trees/{own.name}/contents/{b_key}")) == 403
    assert refused(lambda: nessie.request("GET", f"/trees/{own.name}/entries")) == 403
    assert refused(lambda: put_key(nessie, own, a.names.lake_schema, "sneak")) == 403
    # Content reaches A's staging branch through Trino (its rules decide whose).
    trino = endpoints.nessie("trino")
    # A merge carrying B's tables (or anything not A's) is refused whole: Nessie
    # checks every key a merge changes; main stays where it was.
    for elements in ((b.names.lake_schema, "sneak"), ("sneak",)):
        start = nessie.get_reference(a.names.staging_branch)
        assert start is not None
        sneaked = put_key(trino, start, *elements)
        assert refused(lambda sneaked=sneaked: nessie.merge(sneaked, main)) == 403
        assert admin.get_reference(MAIN_BRANCH) == main
        nessie.assign_branch(sneaked, main)  # A may reset its own branch
    # ... while A's own schema merges (as A's runs publish).
    start = nessie.get_reference(a.names.staging_branch)
    assert start is not None
    mine_key = f"t{uuid.uuid4().hex[:6]}"
    mine = put_key(trino, start, a.names.lake_schema, mine_key)
    published = nessie.merge(mine, main, message=f"test: {a.id} merges its own key")
    assert published.hash != main.hash
    assert admin.log(MAIN_BRANCH, limit=1)[0].committer == a.principal
    # (and takes it out again: the lake stays as A's runs left it)
    put_key(nessie, published, a.names.lake_schema, mine_key, delete=True)
    nessie.assign_branch(mine, nessie.get_reference(MAIN_BRANCH) or main)

    # Who Nessie does not know is refused: no token, a token for Trino, a forged one.
    for token in (None, a.token(), forged_token(NESSIE_PRINCIPALS.admin, NESSIE_AUDIENCE)):
        stranger = (
            as_nessie(endpoints, token, folder) if token else NessieClient(endpoints.nessie_url)
        )
        assert refused(lambda stranger=stranger: stranger.get_reference(MAIN_BRANCH)) == 401
