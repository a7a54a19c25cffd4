"""The `tollway` command line: typer commands over the same services the HTTP API uses."""
