"""`clientpipelines-app`: serve the onboarding app (Streamlit) on a port.

    clientpipelines-app [--port 8501] [--address 0.0.0.0]

The settings are environment variables, listed in clientpipelines/app/main.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

APP = Path(__file__).with_name("main.py")


def streamlit_argv(port: int, address: str) -> list[str]:
    """`streamlit run` for the app: headless, no usage statistics sent anywhere, no file
    watcher (the image's code does not change), XSRF protection on (the default), no
    tracebacks in the page."""
    return [
        "streamlit",
        "run",
        str(APP),
        f"--server.port={port}",
        f"--server.address={address}",
        "--server.headless=true",
        "--server.fileWatcherType=none",
        "--server.enableXsrfProtection=true",
        "--browser.gatherUsageStats=false",
        "--global.developmentMode=false",
        "--client.toolbarMode=minimal",
        # An exception's type only, never its traceback, to whoever uses the app.
        "--client.showErrorDetails=type",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clientpipelines-app", description=__doc__)
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="0.0.0.0")  # noqa: S104 - a server's default
    args = parser.parse_args(argv)
    from streamlit.web import cli  # noqa: PLC0415 - only the app's image has streamlit

    sys.argv = streamlit_argv(args.port, args.address)
    return int(cli.main() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
