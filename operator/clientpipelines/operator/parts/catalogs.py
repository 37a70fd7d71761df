"""The client's Trino catalogs: staging (Iceberg on its Nessie branch), cdc or src."""

from __future__ import annotations

from functools import partial

from clientpipelines.operator import desired
from clientpipelines.operator.parts.base import PartContext, PartResult, Removal


def ensure(ctx: PartContext) -> PartResult:
    """Create missing catalogs, recreate changed ones (there is no ALTER CATALOG), drop extras."""
    spec, trino = ctx.spec, ctx.systems.trino
    creds = None if spec.cdc else ctx.need_creds("the postgres catalog (full-reload)")
    wanted = desired.build_catalogs(
        spec,
        ctx.systems.settings,
        username=creds.username if creds else "",
        password=creds.password if creds else "",
        secret_version=creds.version if creds else "",
    )
    known = {
        str(c.get("name")): str(c.get("fingerprint")) for c in ctx.status.get("catalogs") or []
    }
    live = trino.catalogs()
    writes = []
    for name, cat in sorted(wanted.items()):
        # Trino does not show a catalog's properties, so the fingerprint recorded in
        # status is what tells a changed catalog. One that exists without a record
        # (status lost to a crash between create and record) is adopted as it is.
        if name in live and known.get(name, cat.fingerprint) == cat.fingerprint:
            continue
        if name in live:
            trino.drop_catalog(name)
            writes.append(f"recreated catalog {name} (settings changed)")
        elif name in known:
            writes.append(f"repaired catalog {name} (it had been dropped)")
        else:
            writes.append(f"created catalog {name}")
        trino.create_catalog(name, cat.connector, cat.properties)
    for name in desired.owned_catalog_names(spec.client_id):
        if name not in wanted and name in live:
            trino.drop_catalog(name)
            writes.append(f"dropped catalog {name} (not used in mode {spec.mode})")
    return PartResult(
        True,
        "CatalogsExist",
        ", ".join(sorted(wanted)),
        status={
            "catalogs": [
                {"name": n, "fingerprint": c.fingerprint} for n, c in sorted(wanted.items())
            ]
        },
        writes=writes,
    )


def remove(ctx: PartContext, removal: Removal) -> None:
    """Drop every catalog the operator may own for the client, whatever its mode."""
    trino = ctx.systems.trino
    for catalog in desired.owned_catalog_names(ctx.spec.client_id):
        removal.step(f"dropped catalog {catalog}", partial(trino.drop_catalog, catalog))


def kept(ctx: PartContext) -> str:
    return f"catalogs {', '.join(desired.owned_catalog_names(ctx.spec.client_id))}"
