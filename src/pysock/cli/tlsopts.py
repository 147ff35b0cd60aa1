"""TLS options every stream command shares (connect, listen, unix), in one spelling,
turned into net.tls.TLSOptions in one place; and the -v lines about a session.

A command adds @tls_options("client") or @tls_options("server") and then calls
tls_client(kw, host) / tls_server(kw, diag) to get what net.tls.start_client /
start_server take (None when --tls was not given)."""

from __future__ import annotations

import click

from pysock.cli.options import Seconds

_CLIENT_ONLY = ("sni", "cafile", "capath", "insecure")
_SERVER_ONLY = ("verify_client",)


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

    def decorate(f):
        for option in reversed(opts):
            f = option(f)
        return f
    return decorate


def _options(kw: dict, role: str):
    tls_given = kw.pop("tls")
    names = ("cert", "key", "alpn", "tls_min", "handshake_timeout") + _CLIENT_ONLY + _SERVER_ONLY
    values = {n: kw.pop(n, None) for n in names}
    other = _SERVER_ONLY if role == "client" else _CLIENT_ONLY
    wrong = [n for n in other if values[n]]
    if wrong:
        flag = "--" + wrong[0].replace("_", "-")
        raise click.UsageError(f"{flag} is for the {'server' if role == 'client' else 'client'} "
                               f"side")
    if not tls_given:
        used = [n for n, v in values.items() if v]
        if used:
            flag = "--" + used[0].replace("_", "-")
            raise click.UsageError(f"{flag} needs --tls")
        return None
    alpn = tuple(p.strip() for p in (values["alpn"] or "").split(",") if p.strip())
    if values["alpn"] is not None and not alpn:
        raise click.UsageError("--alpn needs at least one protocol name")
    if values["key"] and not values["cert"]:
        raise click.UsageError("--key needs --cert")
    from pysock.net.tls import TLSOptions
    return TLSOptions(server_name=values["sni"], cafile=values["cafile"],
                      capath=values["capath"], insecure=bool(values["insecure"]),
                      cert=values["cert"], key=values["key"], alpn=alpn,
                      min_version=values["tls_min"], verify_client=values["verify_client"],
                      handshake_timeout=values["handshake_timeout"])


def tls_client(kw: dict, diag):
    """A ClientIdentity from the command's keyword arguments (which it pops), warning
    once about --insecure; None without --tls."""
    opts = _options(kw, "client")
    if opts is None:
        return None
    from pysock.net.tls import client_identity
    identity = client_identity(opts)
    if opts.insecure:
        diag.warn("--insecure: the server's certificate is not verified; anyone on the path "
                  "can read and change this connection")
    return identity


def tls_server(kw: dict, diag):
    """A ServerIdentity for a server (made once, shared by every client), printing the
    fingerprint of a generated certificate; None without --tls."""
    opts = _options(kw, "server")
    if opts is None:
        return None
    from pysock.net.tls import server_identity
    identity = server_identity(opts)
    if identity.generated_fingerprint:
        diag.say("generated a temporary self-signed certificate (--cert/--key to use your own)")
        diag.say(f"SHA-256 fingerprint: {identity.generated_fingerprint}")
    return identity


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
