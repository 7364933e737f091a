"""The `shoefind` command line (typer). Library calls live in shoefind/, flows in flows/."""
