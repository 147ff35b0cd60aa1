"""One module per area; each exposes scenarios(quick: bool) -> iterable of Scenario."""
