"""The benchmark: servers side by side, a load client, the report (python -m sfdcflex.bench)."""
