#!/usr/bin/env python3
"""Start sfdcflex: python run.py --demo (no set-up), or python run.py with a .env file."""
from sfdcflex.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
