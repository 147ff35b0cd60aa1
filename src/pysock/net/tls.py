"""TLS on any stream socket, as one more Channel for the relay and the hub.

The TLS state machine runs on memory BIOs, not on the socket itself, so that
pysock decides when bytes move: a non-blocking read that finds no whole record
becomes Blocked(fd, POLLIN); ciphertext the kernel would not take yet waits in
user space and is flushed before anything new (Blocked(fd, POLLOUT)); and at
end of input close_notify is sent while the peer's data keeps arriving. (With
ssl.SSLSocket, unwrap() reads on and fails with APPLICATION_DATA_AFTER_CLOSE_NOTIFY
on exactly that half-close.) Every record the socket gave is decrypted in the same
recv() call, so no data is ever left in the TLS buffer while poll() says "nothing"."""

from __future__ import annotations

import errno
import select
import socket
import ssl
import time
from dataclasses import dataclass

from pysock.errors import NetworkError, UsageError, worded
from pysock.net.endpoints import SocketChannel
from pysock.net.pump import Blocked

READ_SIZE = 1 << 18  # ciphertext read from the socket per recv()
WRITE_SIZE = 1 << 18  # plaintext encrypted per send()
HANDSHAKE_TIMEOUT = 10.0  # every handshake, client or server, one client or many
VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class TLSOptions:
    """What the user asked for, in either role."""

    server_name: str | None = None  # client: SNI and the name verified
    cafile: str | None = None
    capath: str | None = None
    insecure: bool = False
    cert: str | None = None  # client certificate, or the server's own
    key: str | None = None
    alpn: tuple[str, ...] = ()
    min_version: str | None = None  # '1.2' | '1.3'
    verify_client: str | None = None  # server: CA file client certificates must chain to
    handshake_timeout: float | None = None  # None: the command's -w/-i, else HANDSHAKE_TIMEOUT


@dataclass(frozen=True)
class ClientIdentity:
    """A client context made once, before connecting (so bad files are usage errors)."""

    context: ssl.SSLContext
    options: TLSOptions


@dataclass(frozen=True)
class ServerIdentity:
    """A server context, and the fingerprint of the certificate made for it (if one was)."""

    context: ssl.SSLContext
    generated_fingerprint: str | None = None
    options: TLSOptions = TLSOptions()


# ---- contexts ---------------------------------------------------------------


def client_identity(opts: TLSOptions) -> ClientIdentity:
    return ClientIdentity(client_context(opts), opts)


def client_context(opts: TLSOptions) -> ssl.SSLContext:
    try:
        if opts.cafile or opts.capath:
            ctx = ssl.create_default_context(cafile=opts.cafile, capath=opts.capath)
        else:
            ctx = ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load CA certificates from {opts.cafile or opts.capath}: "
                         f"{_why(exc)}") from None
    if opts.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    _common(ctx, opts)
    if opts.cert:
        _load_chain(ctx, opts.cert, opts.key)
    elif opts.key:
        raise UsageError("a private key was given without its certificate")
    return ctx


def server_identity(opts: TLSOptions) -> ServerIdentity:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _common(ctx, opts)
    fingerprint = None
    if opts.cert:
        _load_chain(ctx, opts.cert, opts.key)
    elif opts.key:
        raise UsageError("a private key was given without its certificate")
    else:
        from pysock.net.selfsigned import load_self_signed
        fingerprint = load_self_signed(ctx)
    if opts.verify_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            ctx.load_verify_locations(cafile=opts.verify_client)
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError("verify_client", opts.verify_client, None, _why(exc)) from None
    return ServerIdentity(ctx, fingerprint, opts)


def _common(ctx: ssl.SSLContext, opts: TLSOptions) -> None:
    # Peers such as ncat end with a bare TCP FIN and go on reading: take that as the end
    # of their data (TLSChannel.clean_close tells it apart), and keep writing to them.
    ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    if opts.min_version:
        ctx.minimum_version = VERSIONS[opts.min_version]
    if opts.alpn:
        ctx.set_alpn_protocols(list(opts.alpn))


def _load_chain(ctx: ssl.SSLContext, cert: str, key: str | None) -> None:
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError("cert", cert, key, _why(exc)) from None


class CertificateError(UsageError):
    """A certificate (cert, with key when given) or a CA file (verify_client) that
    cannot be loaded: which file it was meant as, the files, and why."""

    def __init__(self, role: str, path: str, key: str | None, why: str):
        self.role, self.path, self.key, self.why = role, path, key, why
        what = {"cert": "certificate", "verify_client": "CA file"}[role]
        super().__init__(f"cannot load the {what} {path}"
                         + (f" with the key {key}" if key else "") + f": {why}")


def _why(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return tls_failure(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


# ---- the channel ------------------------------------------------------------


class TLSChannel(SocketChannel):
    """A TLS connection over a (non-blocking once relaying) stream socket."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, *, server_side: bool,
                 server_name: str | None = None):
        super().__init__(sock)
        self.can_splice = False  # the bytes on the wire are not the data
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_side=server_side,
                                    server_hostname=None if server_side else server_name)
        self.server_side = server_side
        self._unsent = memoryview(b"")  # ciphertext the kernel has not taken yet
        self._fin_when_flushed = False
        self.clean_close = True  # False once the peer closes TCP without close_notify
        self._ended = False  # the peer's stream is over (close_notify or TCP end)
        self._socket_ended = False
        self._failure: OSError | None = None

    # -- handshake ---------------------------------------------------------

    def handshake_step(self) -> None:
        """Advance the handshake; returns when done, raises Blocked while waiting."""
        try:
            while not self._handshake_once():
                self._flush_some()
                if self._unsent:
                    raise Blocked(self.rfd, select.POLLOUT)
                if not self._feed(READ_SIZE):
                    raise Blocked(self.rfd, select.POLLIN)
        except OSError as exc:  # from the socket: reset, refused, ...
            raise _handshake_os_error(exc, self.peer) from None
        self._take_output()

    def _handshake_once(self) -> bool:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLError as exc:
            try:
                self._flush_some()  # let the peer see our alert
            except OSError:
                pass
            raise handshake_error(exc, self.peer) from None
        return True

    def handshake(self, timeout: float | None = HANDSHAKE_TIMEOUT) -> TLSChannel:
        """The whole handshake, waiting at most `timeout` seconds."""
        self.sock.setblocking(False)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self.handshake_step()
                break
            except Blocked as blocked:
                _wait_for(blocked, deadline, f"TLS handshake with {self.peer} timed out "
                                             f"after {timeout:g} s")
        self.finish_handshake()
        return self

    def finish_handshake(self) -> None:
        """Send the last flight (session tickets) if the kernel takes it; what it
        leaves, the relay sends. A peer gone already is told by the first read or
        write after this, once the data it sent with its Finished is read."""
        try:
            self._flush_some()
        except OSError:
            pass

    # -- Channel -----------------------------------------------------------

    # recv() hands back all that decrypts, which may not fit a caller's buffer, so the
    # relay must not read through SocketChannel.recv_into (that would read ciphertext)
    recv_into = None

    def recv(self, size: int) -> bytes:
        """Everything decryptable from what the socket holds now; b'' at the end."""
        if self._failure is not None:
            raise self._failure
        parts: list[bytes] = []
        while not self._ended:
            try:
                data = self.tls.read(READ_SIZE)
                if data:
                    parts.append(data)
                    continue
                self._end()  # read() says so by b'' or by raising
                break
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._end()
                break
            except ssl.SSLError as exc:
                self._failure = OSError(errno.EPROTO, tls_failure(exc))
                if parts:  # hand over what came before the alert first
                    break
                raise self._failure from None
            if parts:  # all that was fed is decrypted: nothing stays behind in the engine
                break
            if not self._feed(max(size, 1 << 14)):
                self._flush_some()
                raise Blocked(self.rfd, select.POLLIN | (select.POLLOUT if self._unsent else 0))
        try:
            self._flush_some()  # e.g. a key-update answer, or our alert
        except OSError as exc:
            if not parts:
                raise
            self._failure = exc  # the data first; the next read reports the failure
        return b"".join(parts)

    def send(self, data) -> int:
        self.flush()
        chunk = data[:WRITE_SIZE]
        try:
            n = self.tls.write(chunk)
        except ssl.SSLError as exc:
            raise OSError(errno.EPROTO, tls_failure(exc)) from None
        self._take_output()
        self._flush_some()
        return n

    def flush(self) -> None:
        """Push out ciphertext held in user space; Blocked(POLLOUT) while the kernel is full."""
        self._flush_some()
        if self._unsent:
            raise Blocked(self.wfd, select.POLLOUT)
        if self._fin_when_flushed:
            self._fin_when_flushed = False
            super().shutdown_write()

    @property
    def pending_output(self) -> int:
        return len(self._unsent) + self._out.pending

    def shutdown_write(self) -> None:
        """close_notify, then FIN once it (and all before it) is on the wire."""
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass  # sent ours; the peer's comes later, through recv()
        except ssl.SSLError:
            pass
        self._take_output()
        self._fin_when_flushed = True
        try:
            self.flush()
        except Blocked:
            pass

    def close(self) -> None:
        self.sock.close()

    # -- the memory BIOs ---------------------------------------------------

    def _end(self) -> None:
        """The peer's data ended: with close_notify, or (if the socket ended first) not."""
        self._ended = True
        self.clean_close = not self._socket_ended

    def _feed(self, size: int) -> int:
        """Ciphertext from the socket into the TLS engine: its size, 0 if none yet."""
        try:
            data = self.sock.recv(size)
        except (BlockingIOError, InterruptedError):
            return 0
        if data:
            self._in.write(data)
            return len(data)
        self._in.write_eof()
        self._socket_ended = True
        return -1  # the socket ended: the next read tells clean from truncated

    def _take_output(self) -> None:
        if self._out.pending:
            out = self._out.read()
            self._unsent = memoryview(bytes(self._unsent) + out) if self._unsent else \
                memoryview(out)

    def _flush_some(self) -> None:
        self._take_output()
        while self._unsent:
            try:
                n = self.sock.send(self._unsent)
            except (BlockingIOError, InterruptedError):
                return
            self._unsent = self._unsent[n:]

    # -- what was negotiated ----------------------------------------------

    def summary(self) -> str:
        """One line: version, cipher, ALPN, and the peer certificate's subject if verified."""
        info = self.session()
        text = f"{info['version']} {info['cipher']}"
        if info["alpn"]:
            text += f", ALPN {info['alpn']}"
        subject = dict(pair for rdn in (self.tls.getpeercert() or {}).get("subject", ())
                       for pair in rdn)
        if subject:
            text += f", certificate CN={subject.get('commonName', '?')}"
        return text

    def session(self) -> dict:
        """Version, cipher, ALPN and the peer certificate (DER), for -v."""
        cipher = self.tls.cipher()
        return {"version": self.tls.version(), "cipher": cipher[0] if cipher else None,
                "bits": cipher[2] if cipher else None,
                "alpn": self.tls.selected_alpn_protocol(),
                "peer_cert": self.tls.getpeercert(binary_form=True)}


def _wait_for(blocked: Blocked, deadline: float | None, message: str) -> None:
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        raise NetworkError(message)
    poller = select.poll()
    poller.register(blocked.fd, blocked.event)
    if not poller.poll(None if remaining is None else max(1, int(remaining * 1000))):
        raise NetworkError(message)


# ---- opening ----------------------------------------------------------------


def start_client(sock: socket.socket, identity: ClientIdentity, server_name: str | None,
                 timeout: float | None = None, *, peer: str | None = None) -> TLSChannel:
    """The one call a client command makes: handshake as a client, verified unless
    --insecure; `server_name` is the host typed (--sni overrides); `peer` names the
    other end in messages when the socket's peer is not it (a proxy)."""
    name = identity.options.server_name or server_name
    if not name and identity.context.check_hostname:
        sock.close()
        raise UsageError("TLS needs a server name to verify here, and none was given")
    channel = TLSChannel(sock, identity.context, server_side=False, server_name=name)
    channel.peer = peer or channel.peer
    try:
        return channel.handshake(identity.options.handshake_timeout or timeout
                                 or HANDSHAKE_TIMEOUT)
    except BaseException:
        sock.close()
        raise


def start_server(sock: socket.socket, identity: ServerIdentity,
                 timeout: float | None = None, *, peer: str | None = None) -> TLSChannel:
    """The one call a server command makes for an accepted socket; `peer` names the
    client in messages when its address says nothing (a Unix client's is empty)."""
    channel = TLSChannel(sock, identity.context, server_side=True)
    channel.peer = peer or channel.peer
    try:
        return channel.handshake(timeout or HANDSHAKE_TIMEOUT)
    except BaseException:
        sock.close()
        raise


# ---- errors in words --------------------------------------------------------

_VERIFY_REASONS = {
    9: "certificate is not yet valid",
    10: "certificate expired",
    18: "self-signed certificate (not issued by a trusted CA)",
    19: "unknown issuer (self-signed certificate in the chain)",
    20: "unknown issuer (no trusted CA issued it)",
    21: "unknown issuer (cannot verify the first certificate)",
    2: "unknown issuer (the issuer certificate is not known)",
    23: "certificate revoked",
    62: "name mismatch",
    64: "name mismatch (IP address)",
    26: "certificate not meant for this purpose",
}


def handshake_error(exc: ssl.SSLError, peer: str) -> NetworkError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = _VERIFY_REASONS.get(exc.verify_code, exc.verify_message)
        detail = exc.verify_message or ""
        if detail and detail.lower() not in reason.lower():
            reason += f": {detail.rstrip('.')}"
        advice = "tls_trust_issuer" if exc.verify_code in (2, 18, 19, 20, 21) else None
        return NetworkError(f"TLS verification of {peer} failed: {reason}", advice=advice)
    return NetworkError(f"TLS handshake with {peer} failed: {tls_failure(exc)}")


def _handshake_os_error(exc: OSError, peer: str) -> NetworkError:
    if exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return NetworkError(f"TLS handshake with {peer} failed: connection reset by the peer")
    return NetworkError(f"TLS handshake with {peer} failed: {exc.strerror or exc}")


_REASONS = {
    "WRONG_VERSION_NUMBER": "the peer does not speak TLS",
    "UNEXPECTED_EOF_WHILE_READING": "the peer closed the connection",
    "HTTP_REQUEST": "the peer sent plain HTTP, not TLS",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": ("the client sent no certificate", "tls_no_client_cert"),
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": ("the server requires a client certificate",
                                          "tls_client_cert_required"),
    "SSLV3_ALERT_BAD_CERTIFICATE": "the peer rejected our certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the peer does not trust our certificate's issuer",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the peer says our certificate expired",
    "TLSV1_ALERT_PROTOCOL_VERSION": ("no TLS version both sides accept", "tls_version"),
    "UNSUPPORTED_PROTOCOL": ("no TLS version both sides accept", "tls_version"),
    "NO_PROTOCOLS_AVAILABLE": ("no TLS version both sides accept", "tls_version"),
    "TLSV1_ALERT_NO_APPLICATION_PROTOCOL": ("no ALPN protocol both sides accept", "tls_alpn"),
    "NO_APPLICATION_PROTOCOL": ("no ALPN protocol both sides accept", "tls_alpn"),
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the peer refused the handshake (no common cipher or "
                                     "a certificate it requires)",
    "NO_SHARED_CIPHER": "no cipher both sides accept",
    "KEY_VALUES_MISMATCH": "the key does not belong to the certificate",
    "CERTIFICATE_VERIFY_FAILED": "the peer's certificate did not verify",
}


def tls_failure(exc: ssl.SSLError) -> str:
    """An SSLError as words a user can act on."""
    reason = getattr(exc, "reason", None)
    if reason:
        known = _REASONS.get(reason)
        if known is None:
            return reason.lower().replace("_", " ")
        return known if isinstance(known, str) else worded(*known)
    text = str(exc.args[1] if len(exc.args) > 1 else exc)
    return text.split("] ", 1)[-1].split(" (_ssl.c")[0]
