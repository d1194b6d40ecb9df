"""python -m sfdcflex.bench: run the benchmark (see sfdcflex.bench.main)."""
from .main import main

raise SystemExit(main())
