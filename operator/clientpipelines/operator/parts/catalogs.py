"""The client's Trino catalogs: staging (Iceberg on its Nessie branch), cdc or src."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from clientpipelines.clients.errors import ServiceUnavailable
from clientpipelines.operator import desired
from clientpipelines.operator.parts.base import PartContext, PartResult, Removal
from clientpipelines.trino_access import write_private


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
    for cat in wanted.values():
        if cat.credentials_file and _write_credentials(*cat.credentials_file):
            writes.append(f"wrote the credentials file of catalog {cat.name}")
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
    login = _login_file(ctx)
    if login is not None and spec.names.source_catalog not in wanted and login.exists():
        _delete(login)  # the postgres catalog is gone: so is the login it read
        writes.append(f"deleted {login.name} (not used in mode {spec.mode})")
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
    path = _login_file(ctx)
    if path is not None:
        removal.step(f"deleted {path.name} (the catalog's login)", partial(_delete, path))


def _login_file(ctx: PartContext) -> Path | None:
    """Where the client's postgres catalog reads its login (None: inline)."""
    path = desired.catalog_login_path(ctx.spec, ctx.systems.settings)
    return None if path is None else Path(path)


def _write_credentials(path: str, text: str) -> bool:
    try:
        return write_private(Path(path), text)
    except OSError as exc:
        raise ServiceUnavailable("trino", f"writing a catalog's credentials file: {exc}") from exc


def _delete(path: Path) -> bool:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise ServiceUnavailable("trino", f"deleting {path.name}: {exc}") from exc
    return True


def kept(ctx: PartContext) -> str:
    return f"catalogs {', '.join(desired.owned_catalog_names(ctx.spec.client_id))}"
