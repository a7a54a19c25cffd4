"""`tollway import kong FILE...`: a Kong decK configuration as a Tollway config file (tollway.config.kong)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from tollway.cli.commands import Commands
from tollway.cli.common import err, fail

import_app = Commands(help="Move to Tollway from another gateway: import its configuration.")


@import_app.command("kong")
def import_kong_command(
    files: Annotated[list[Path], typer.Argument(help="decK files (_format_version 3.0), merged in order.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the config here instead of standard output.")
    ] = None,
) -> None:
    """Translate a Kong decK configuration into a Tollway config file and name what could not be translated.

    Services and routes with ai-proxy / ai-proxy-advanced become providers, models and `routes:` (the same
    paths, the plugin's model as the default); consumers keep their key-auth keys; decK's ${{ env "VAR" }}
    becomes ${VAR}. Each thing left out is one `note:` line on standard error (and a comment in the file).

    Example: tollway import kong kong.yaml --output tollway.yaml
    """
    from tollway.config.kong import import_kong

    documents: list[dict[str, Any]] = []
    for file in files:
        try:
            loaded = list(yaml.safe_load_all(file.read_text()))
        except OSError as exc:
            fail([f"{file}: {exc.strerror or exc}"])
        except yaml.YAMLError as exc:
            fail([f"{file}: invalid YAML: {exc}"])
        for doc in loaded:
            if doc is None:
                continue
            if not isinstance(doc, dict):
                fail([f"{file}: a decK document is a mapping (services:, routes:, consumers:, plugins:)"])
            documents.append(doc)
    imported = import_kong(documents)
    header = [f"# Imported from Kong ({', '.join(str(f) for f in files)}) by `tollway import kong`."]
    header += [f"# note: {line}" for line in imported.notes]
    text = "\n".join(header) + "\n" + yaml.safe_dump(imported.config, sort_keys=False, allow_unicode=True)
    if output is not None:
        output.write_text(text)
        err.print(f"wrote {output}", highlight=False)
    else:
        typer.echo(text, nl=False)
    for line in imported.notes:
        err.print(f"note: {line}", highlight=False, soft_wrap=True)
