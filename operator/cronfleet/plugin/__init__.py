"""`kubectl cronfleet`: the user's tools, acting with the user's own credentials."""
