"""The ways out that core errors point to, in the user's flags: the core raises a
fact with an advice key (pysock.errors.ADVICE), the command line words it here.
Beside launch.py rather than in cli/: the click-free inspect path words its
errors too, and importing anything under cli/ imports click."""

from __future__ import annotations

ADVICE = {
    "numeric_lookups": " (-n forbids name lookups)",
    "numeric_names": " (-n forbids names)",
    "proxy_auth_refused": " (--proxy-auth)",
    "proxy_may_need_auth": " (it may need --proxy-auth USER:PASS)",
    "proxy_auth_needed": " (it needs --proxy-auth USER:PASS)",
    "proxy_auth_wrong": " (wrong --proxy-auth user name or password)",
    "socks4_v4_only": " (use --proxy-type socks5)",
    "unix_other_type": " (try --type {other})",
    "multicast_v6_on_v4": " (drop -4)",
    "multicast_iface": " (no multicast route: name the interface with --iface)",
    "datagram_mtu": "; send smaller ones with --chunk",
    "datagram_udp_limit": "; split it with --chunk N",
    "datagram_sndbuf": " (its send buffer is {limit} bytes; raise it with --sockopt sndbuf=N, "
                       "or use --chunk N)",
    "forward_wait": " (-w)",
    "capture_saved": ", or read a saved capture with -r FILE",
    "capture_alone": ": capture it alone with -i {iface}",
    "inspect_source": "; use --source auto or proc",
    "inspect_path": "; for Unix sockets use --path",
    "inspect_path_paren": " (for Unix sockets use --path)",
    "perf_rr_server": ": --rr needs pysock perf -s at the other end",
    "scan_connect_instead": " (or drop --syn for a connect scan)",
    "access_refused": " by --allow/--deny",
    "max_conns_reached": "=--max-conns {limit} reached",
    "once_reached": "=--once: one client",
    "hub_stdin_file": "; with -k it is not sent to clients (pipe it in instead)",
    "relay_send_only": " (--send-only)",
    "relay_peer_closed": " (--exit-on-peer-close)",
    "relay_quit": " (-q)",
    "tls_trust_issuer": " (--cafile FILE to trust its issuer, --insecure to skip checks)",
    "tls_no_client_cert": " (--verify-client)",
    "tls_client_cert_required": " (--cert/--key)",
    "tls_version": " (--tls-min?)",
    "tls_alpn": " (--alpn)",
    "ss_dev": "; select by address with src/dst or --addr",
    "ss_cgroup": "; select by owner with --pid, --process or --user",
    "broadcast_needs_flag": " (sending to a broadcast address needs --broadcast)",
}


def install() -> None:
    from pysock import errors
    errors.ADVICE.update(ADVICE)
