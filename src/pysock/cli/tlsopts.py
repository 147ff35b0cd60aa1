"""TLS options every stream command shares (connect, listen, unix), in one spelling,
turned into net.tls.TLSOptions in one place; and the -v lines about a session.

A command adds @tls_options("client"), ("server") or ("both") and receives
tls=TLSSpec, checked where click hands it over; tls_client(spec, diag) /
tls_server(spec, diag) make what net.tls.start_client / start_server take (None
when --tls was not given)."""

from __future__ import annotations

from typing import NamedTuple

import click

from pysock.cli import options as opt
from pysock.cli.options import Seconds
from pysock.errors import UsageError

_CLIENT_ONLY = ("sni", "cafile", "capath", "insecure")
_SERVER_ONLY = ("verify_client",)
_ORDER = ("cert", "key", "alpn", "tls_min", "handshake_timeout") + _CLIENT_ONLY + _SERVER_ONLY


def _file(help_text: str, *names: str, **kw):
    return click.option(*names, type=click.Path(exists=True, dir_okay=False), default=None,
                        help=help_text, **kw)


def tls_options(role: str):
    """The --tls family for a 'client' or a 'server' command, or 'both' for one that
    is either (unix, unix -l): tls_client/tls_server then refuse the other role's."""
    client = role in ("client", "both")
    opts = [
        click.option("--tls", "--ssl", "tls", is_flag=True,
                     help="Speak TLS (certificate verified against the system store)."
                     if client else "Speak TLS (a self-signed certificate unless --cert)."),
        _file("Certificate (PEM) to present: "
              + ("a client certificate." if client else "the server's, chain included."),
              "--cert", metavar="FILE"),
        _file("Private key for --cert (if not in the same file).", "--key", metavar="FILE"),
        click.option("--alpn", metavar="PROTO,...", default=None,
                     help="ALPN protocols to offer, e.g. h2,http/1.1."),
        click.option("--tls-min", type=click.Choice(["1.2", "1.3"]), default=None,
                     help="Lowest TLS version to accept."),
        click.option("--handshake-timeout", type=Seconds(), default=None, metavar="SECS",
                     help="Give up a TLS handshake after SECS [default: -i, else -w, "
                          "else 10]."),
    ]
    if client:
        opts += [
            click.option("--sni", metavar="NAME", default=None,
                         help="Server name to send and verify (default: HOST)."),
            _file("Trust the CA certificates in FILE instead of the system store.",
                  "--cafile", metavar="FILE"),
            click.option("--capath", type=click.Path(exists=True, file_okay=False),
                         default=None, metavar="DIR",
                         help="Trust the hashed CA directory DIR instead of the system store."),
            click.option("--insecure", is_flag=True,
                         help="Do not verify the server's certificate (a warning says so)."),
        ]
    if role in ("server", "both"):
        opts.append(_file("Require a client certificate issued by a CA in FILE (mutual TLS).",
                          "--verify-client", metavar="CAFILE"))

    return opt.option_group(opts, lambda **values: TLSSpec.build(role, **values), "tls")


class TLSSpec(NamedTuple):
    """The --tls family as given, checked once: enabled says whether --tls was."""

    enabled: bool = False
    cert: str | None = None
    key: str | None = None
    alpn: tuple[str, ...] = ()
    tls_min: str | None = None
    handshake_timeout: float | None = None
    sni: str | None = None
    cafile: str | None = None
    capath: str | None = None
    insecure: bool = False
    verify_client: str | None = None

    @classmethod
    def build(cls, role: str, *, tls: bool, alpn: str | None = None, **values) -> TLSSpec:
        """role 'client' or 'server' refuses the other side's options; 'both' leaves
        that to options(role), once the command knows which side it is."""
        if role != "both":
            _refuse_other_side(values, role)
        if not tls:
            given = dict(values, alpn=alpn)
            used = [n for n in _ORDER if given.get(n)]
            if used:
                raise UsageError(f"{_flag(used[0])} needs --tls", see_help=True)
            return cls()
        protocols = tuple(p.strip() for p in (alpn or "").split(",") if p.strip())
        if alpn is not None and not protocols:
            raise UsageError("--alpn needs at least one protocol name", see_help=True)
        if values.get("key") and not values.get("cert"):
            raise UsageError("--key needs --cert", see_help=True)
        return cls(enabled=True, alpn=protocols, **values)

    def options(self, role: str):
        """net.tls.TLSOptions for this side, or None without --tls."""
        _refuse_other_side(self._asdict(), role)
        if not self.enabled:
            return None
        from pysock.net.tls import TLSOptions
        return TLSOptions(server_name=self.sni, cafile=self.cafile, capath=self.capath,
                          insecure=self.insecure, cert=self.cert, key=self.key, alpn=self.alpn,
                          min_version=self.tls_min, verify_client=self.verify_client,
                          handshake_timeout=self.handshake_timeout)


def _refuse_other_side(values: dict, role: str) -> None:
    other = _SERVER_ONLY if role == "client" else _CLIENT_ONLY
    wrong = [n for n in other if values.get(n)]
    if wrong:
        raise UsageError(f"{_flag(wrong[0])} is for the "
                         f"{'server' if role == 'client' else 'client'} side", see_help=True)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def tls_client(spec: TLSSpec, diag):
    """A ClientIdentity, warning once about --insecure; None without --tls."""
    opts = spec.options("client")
    if opts is None:
        return None
    from pysock.net.tls import client_identity
    identity = worded_identity(client_identity, opts)
    if opts.insecure:
        diag.warn("--insecure: the server's certificate is not verified; anyone on the path "
                  "can read and change this connection")
    return identity


def tls_server(spec: TLSSpec, diag):
    """A ServerIdentity for a server (made once, shared by every client), printing the
    fingerprint of a generated certificate; None without --tls."""
    opts = spec.options("server")
    if opts is None:
        return None
    from pysock.net.tls import server_identity
    identity = worded_identity(server_identity, opts)
    if identity.generated_fingerprint:
        diag.say("generated a temporary self-signed certificate (--cert/--key to use your own)")
        diag.say(f"SHA-256 fingerprint: {identity.generated_fingerprint}")
    return identity


def worded_identity(make, opts):
    """make(opts) (net.tls.client_identity or server_identity), a file that cannot be
    loaded said with the flag that named it."""
    from pysock.errors import UsageError
    from pysock.net.tls import CertificateError
    try:
        return make(opts)
    except CertificateError as exc:
        if exc.role == "verify_client":
            raise UsageError(f"cannot load --verify-client {exc.path}: {exc.why}") from None
        what = f"--cert {exc.path}" + (f" with --key {exc.key}" if exc.key else "")
        hint = "" if exc.key else " (a separate key file needs --key)"
        raise UsageError(f"cannot load {what}: {exc.why}{hint}") from None


def describe(channel, diag) -> None:
    """-v: what was negotiated, and who the peer says it is."""
    if not diag.verbosity:
        return
    info = channel.session()
    line = f"TLS: {info['version']}, {info['cipher']}"
    line += f", ALPN {info['alpn']}" if info["alpn"] else ", no ALPN"
    diag.say(line)
    if info["peer_cert"]:
        for text in certificate_lines(info["peer_cert"]):
            diag.say(text)
    elif channel.server_side:
        diag.say("TLS: the client sent no certificate")


def certificate_lines(der: bytes) -> list[str]:
    from cryptography import x509

    from pysock.net.selfsigned import fingerprint
    cert = x509.load_der_x509_certificate(der)
    when = "%Y-%m-%d %H:%M:%S UTC"
    return [f"peer certificate subject: {cert.subject.rfc4514_string() or '(empty)'}",
            f"peer certificate issuer: {cert.issuer.rfc4514_string() or '(empty)'}",
            f"peer certificate valid from {cert.not_valid_before_utc.strftime(when)} "
            f"to {cert.not_valid_after_utc.strftime(when)}",
            f"peer certificate SHA-256 fingerprint: {fingerprint(der)}"]
