"""Drawing records: rich tables on a terminal, tab-separated text when piped,
JSON Lines with --json. The only package that imports rich."""
