"""`rag serve`: the web app's command, registered from the app side (entry point `rag.commands`), so rag/
never imports app/ or gradio. The command only parses options; app.server does the serving."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from rag.cli import articles_option, index_option, open_assistant, settings_for
from rag.errors import RagError


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise RagError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another with --port") from None


@click.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces).")
@click.option("--port", type=int, help="Port to listen on (default 7860).")
@click.option("--root-path", help="Public sub-path when served behind a reverse proxy, e.g. /rag.")
@articles_option
@index_option
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, root_path: str | None,
          articles_dir: Path | None, index_dir: Path | None) -> None:
    """The browser chat, the JSON API (/api/ask) and the widget (/widget) on one port."""
    from app.server import serve as run_server

    settings = settings_for(ctx, host=host, port=port, root_path=root_path, articles_dir=articles_dir, index_dir=index_dir)
    _check_port_free(settings.host, settings.port)  # before minutes of loading, not after
    assistant = open_assistant(settings)
    shown = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
    click.echo(f"Serving {assistant.index.num_articles} articles at http://{shown}:{settings.port}{settings.root_path}/"
               f"{'  (token required)' if settings.api_token else ''}", err=True)
    run_server(settings, assistant)
