"""python -m sfdcflex: the same as python run.py."""
from .cli import main

raise SystemExit(main())
