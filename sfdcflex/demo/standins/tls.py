"""A self-signed certificate made at run time, so stand-ins can speak HTTPS on loopback.

Tests and the benchmark's HTTPS scenario trust it through the transport's `ca_file` (the
UPSTREAM_CA_FILE setting): the real verification path runs, host name check included.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def openssl_missing_reason() -> str | None:
    """Why a certificate cannot be made here, or None when the `openssl` command is there."""
    return None if shutil.which("openssl") else "the openssl command is not installed"


def make_self_signed(folder: Path, host: str = "localhost") -> tuple[Path, Path]:
    """(certificate, key) PEM files for `host`, valid for a day; the certificate is its own CA."""
    cert, key = folder / f"{host}.crt", folder / f"{host}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key
