"""ArgoCD's Lua for ClientPipeline (health check and resource actions), callable from tests.

lupa runs the same Lua 5.x scripts ArgoCD runs (gopher-lua); objects go in and come
back as plain Python values, as ArgoCD converts them to and from JSON.
"""

from __future__ import annotations

from typing import Any

from lupa import LuaRuntime

from devstack.paths import REPO_ROOT

CHECK = REPO_ROOT / "argocd/resource_customizations/pipelines.promptly.io/ClientPipeline"
ACTIONS = CHECK / "actions"


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def _from_lua(value: Any) -> Any:
    if type(value).__name__ != "_LuaTable":
        return value
    items = dict(value.items())
    if items and list(items) == list(range(1, len(items) + 1)):
        return [_from_lua(v) for v in items.values()]
    return {k: _from_lua(v) for k, v in items.items()}


def _runtime(obj: dict[str, Any], now: str | None = None) -> Any:
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, obj)
    if now is not None:
        # Actions stamp their request with os.date; tests fix the clock.
        lua.execute(f'os.date = function(format) return "{now}" end')
    return lua


def health(obj: dict[str, Any]) -> dict[str, str]:
    result = _runtime(obj).execute((CHECK / "health.lua").read_text())
    return {"status": result["status"], "message": result["message"]}


def discover(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The actions ArgoCD would offer for `obj`, by name."""
    found = _from_lua(_runtime(obj).execute((ACTIONS / "discovery.lua").read_text()))
    return dict(found)


def act(action: str, obj: dict[str, Any], *, now: str) -> dict[str, Any]:
    """The object as the action returns it (ArgoCD patches the live object to it)."""
    script = (ACTIONS / action / "action.lua").read_text()
    return dict(_from_lua(_runtime(obj, now).execute(script)))
