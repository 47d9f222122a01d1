"""Certificates of the local control plane, signed by its CA with openssl.

One place for the sequence every certificate goes through (an EC P-256 key,
a request, a signature by ``ca.crt``/``ca.key``), used for the API server,
the node agent's kubelet endpoint and the real node's components.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


class CertificateError(RuntimeError):
    """openssl refused; the message carries its error."""


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def issue_certificate(
    pki: Path, name: str, subject: str, extensions: str, days: int = 3650
) -> None:
    """An EC key and a certificate signed by the control plane's CA, as ``name.key``/``.crt``."""
    (pki / f"{name}.ext").write_text(extensions)
    openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        subject,
        cwd=pki,
    )
    openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        f"{name}.crt",
        "-days",
        str(days),
        "-extfile",
        f"{name}.ext",
        cwd=pki,
    )
