"""`kubectl cronfleet dashboard`: a local web UI on 127.0.0.1."""
