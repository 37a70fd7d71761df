"""ArgoCD's health check for ClientPipeline (the Lua it runs), callable from tests."""

from __future__ import annotations

from typing import Any

from lupa import LuaRuntime

from devstack.paths import REPO_ROOT

CHECK = REPO_ROOT / "argocd/resource_customizations/pipelines.promptly.io/ClientPipeline"


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def health(obj: dict[str, Any]) -> dict[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, obj)
    result = lua.execute((CHECK / "health.lua").read_text())
    return {"status": result["status"], "message": result["message"]}
