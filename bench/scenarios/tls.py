"""connect/listen --tls: bulk TLS throughput, each tool talking to itself
(pysock -> pysock, socat OPENSSL -> socat OPENSSL-LISTEN, ncat --ssl -> ncat --ssl),
client verifying the server's certificate, over loopback."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time

from bench.core import BenchFailure, Contender, Scenario
from bench.tools import PYSOCK, free_port, have, start, stop, wait_listening

GIB = 1 << 30


@contextlib.contextmanager
def _certificate():
    """A self-signed EC certificate for localhost; clients trust it as its own CA."""
    with tempfile.TemporaryDirectory(prefix="pysock-bench-tls-") as tmp:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", key, "-out", cert], check=True, capture_output=True,
                       timeout=30)
        yield cert, key


def _server(tool: str, port: int, cert: str, key: str) -> list[str]:
    p = str(port)
    return {
        "pysock": [PYSOCK, "listen", "--tls", "--cert", cert, "--key", key, "127.0.0.1", p],
        "socat": ["socat", "-u", f"OPENSSL-LISTEN:{p},bind=127.0.0.1,reuseaddr,cert={cert},"
                  f"key={key},verify=0", "STDOUT"],
        "ncat": ["ncat", "--recv-only", "--ssl", "--ssl-cert", cert, "--ssl-key", key, "-l",
                 "127.0.0.1", p],
    }[tool]


def _client(tool: str, port: int, cert: str) -> str:
    p = str(port)
    return {
        "pysock": f"{PYSOCK} connect --tls --cafile {cert} localhost {p}",
        "socat": f"socat -u STDIN OPENSSL:localhost:{p},cafile={cert}",
        # ncat 7.93 closes with the server's TLS 1.3 session tickets unread: the kernel
        # resets the connection and the server loses the tail, which the byte count
        # catches (without --send-only it loses more); such a run fails, it is not timed
        "ncat": f"ncat --send-only --ssl --ssl-verify --ssl-trustfile {cert} localhost {p}",
    }[tool]


def _transfer(tool: str, size: int):
    """Bytes counted at the server by wc -c: ncat ends with an error status when its
    client closes without close_notify, so the count, not the status, proves the work."""
    def go(files) -> float:
        cert, key = files
        port = free_port()
        server_cmd = " ".join(_server(tool, port, cert, key)) + " | wc -c"
        server = start(["bash", "-c", server_cmd], stdout=subprocess.PIPE)
        try:
            wait_listening(port, proc=server)
            script = f"set -o pipefail; head -c {size} /dev/zero | {_client(tool, port, cert)}"
            t0 = time.perf_counter()
            proc = subprocess.run(["bash", "-c", script], stdin=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=600)
            if proc.returncode != 0:
                raise BenchFailure(f"client exited {proc.returncode}: {proc.stderr[-200:]!r}")
            counted = server.stdout.read()
            secs = time.perf_counter() - t0
            server.wait(60)
            if counted.strip() != str(size).encode():
                got = int(counted.strip() or 0)
                raise BenchFailure(f"the server got {got} of {size} bytes ({size - got} lost)")
            return size / secs / 1e9
        finally:
            stop(server)
    return go


def _throughput(quick: bool) -> Scenario:
    size = (16 << 20) if quick else GIB
    tools = [t for t in ("pysock", "socat", "ncat") if t == "pysock" or have(t)]
    contenders = [Contender(t, _transfer(t, size), peer=t != "pysock") for t in tools]
    return Scenario(f"TLS throughput, {size >> 20} MiB: head | client --tls -> server --tls "
                    f"> /dev/null", "GB/s", "higher", contenders, setup=_certificate,
                    rounds=2 if quick else 5,
                    note="each tool talks to itself; the client verifies the server")


def scenarios(quick: bool):
    if not have("openssl"):
        return
    yield _throughput(quick)
