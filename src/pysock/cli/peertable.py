"""Which peer flags each command accepts, maps or explains (see cli/peerflags.py),
one function per command.
The man page's PEER FLAGS section is this table; tests hold every row to what
the command does."""

from __future__ import annotations

from pysock.cli.peerflags import alias, missing, preset, same

_STDOUT = "plain output piped is tab-separated and --json gives JSON Lines: redirect stdout"
_NO_FIN = "pysock sends FIN at end of input by default (--no-shutdown never does)"

def scan() -> list:
    return [
        same("-p", "nmap", "ports to scan"),
        same("-Pn", "nmap", "skip host discovery"),
        same("-n", "nmap", "no name resolution"),
        same("-4", "nmap", "IPv4"),
        same("-6", "nmap", "IPv6"),
        same("--open", "nmap", "show only open ports"),
        same("--reason", "nmap", "why each state was chosen"),
        same("-g", "nmap", "source port"),
        same("--source-port", "nmap", "source port"),
        same("-v", "nmap", "more detail"),
        alias("-sT", "nmap", "TCP connect scan", "--tcp"),
        alias("-sS", "nmap", "TCP SYN scan", "--syn"),
        alias("-sU", "nmap", "UDP scan", "--udp"),
        alias("--top-ports", "nmap", "the N most common ports", "--top"),
        alias("--max-retries", "nmap", "probe retransmissions", "--retries"),
        alias("--max-rate", "nmap", "at most N probes a second", "--rate"),
        alias("--max-parallelism", "nmap", "probes in flight", "--concurrency"),
        preset("-F", "nmap", "fast mode, the 100 most common ports", ("--top", 100)),
        preset("-T0", "nmap", "paranoid timing, one probe every 5 minutes",
               ("--concurrency", 1), ("--rate", 1 / 300)),
        preset("-T1", "nmap", "sneaky timing, one probe every 15 s",
               ("--concurrency", 1), ("--rate", 1 / 15)),
        preset("-T2", "nmap", "polite timing, one probe every 0.4 s", ("--concurrency", 1), ("--rate", 2.5)),
        preset("-T3", "nmap", "normal timing", note="the default timing"),
        preset("-T4", "nmap", "aggressive timing, answers awaited at most 1.25 s", ("--timeout", 1.25)),
        preset("-T5", "nmap", "insane timing, answers awaited at most 0.3 s", ("--timeout", 0.3)),
        missing("-sV", "nmap", "service version detection", "see --banner (what open ports say first)"),
        missing("-O", "nmap", "OS detection", "see --banner"),
        missing("-A", "nmap", "OS and version detection, scripts and traceroute",
                "see --banner and pysock trace"),
        missing("-sC", "nmap", "default scripts", "see --banner"),
        missing("--script", "nmap", "NSE scripts", "see --banner", takes_value=True),
        missing("-sn", "nmap", "host discovery without a port scan", "see pysock ping 10.0.0.0/24"),
        missing("-sA", "nmap", "ACK scan", "see --syn"),
        missing("-sF", "nmap", "FIN scan", "see --syn"),
        missing("-sN", "nmap", "NULL scan", "see --syn"),
        missing("-sX", "nmap", "Xmas scan", "see --syn"),
        missing("-sW", "nmap", "window scan", "see --syn"),
        missing("-sM", "nmap", "Maimon scan", "see --syn"),
        missing("-sO", "nmap", "IP protocol scan", "see -t and -u"),
        missing("-PE", "nmap", "ICMP echo host discovery", "hosts of a block are checked with an echo "
                "or TCP 80/443; -Pn skips the check"),
        missing("-PS", "nmap", "TCP SYN host discovery", "hosts of a block are checked with an echo "
                "or TCP 80/443; -Pn skips the check", takes_value=False),
        missing("-oN", "nmap", "normal output to a file", _STDOUT, takes_value=True),
        missing("-oG", "nmap", "grepable output to a file", _STDOUT, takes_value=True),
        missing("-oX", "nmap", "XML output to a file", _STDOUT, takes_value=True),
        missing("-oA", "nmap", "output in three formats", _STDOUT, takes_value=True),
        missing("-iL", "nmap", "targets from a file", "pass them as arguments: $(cat FILE)",
                takes_value=True),
        missing("--exclude", "nmap", "hosts to skip", "list the targets to scan", takes_value=True),
        missing("-e", "nmap", "the interface to send from", "probes follow the routing table",
                takes_value=True),
        missing("--min-rate", "nmap", "at least N probes a second", "--rate sets a ceiling only",
                takes_value=True),
        missing("--host-timeout", "nmap", "give up on a slow host", "see -w and --retries",
                takes_value=True),
        missing("--traceroute", "nmap", "the path to each host", "see pysock trace"),
        missing("-f", "nmap", "fragment packets", "see --syn"),
        missing("-D", "nmap", "decoys", "not available", takes_value=True),
        missing("-d", "nmap", "debugging output", "see pysock --debug and --reason"),
    ]

def trace() -> list:
    return [
        same("-n", "traceroute", "no name resolution"),
        same("-q", "traceroute", "probes per hop"),
        same("-m", "traceroute", "the largest TTL"),
        same("-f", "traceroute", "the first TTL"),
        same("-w", "traceroute", "seconds to wait for an answer"),
        same("-N", "traceroute", "probes in flight"),
        same("-s", "traceroute", "source address"),
        same("-i", "traceroute", "interface"),
        same("-p", "traceroute", "destination port (UDP, or TCP with -T)"),
        same("-4", "traceroute", "IPv4"),
        same("-6", "traceroute", "IPv6"),
        same("-c", "mtr", "rounds, then a summary per hop"),
        alias("--report-cycles", "mtr", "rounds, then a summary per hop", "--repeat"),
        alias("-I", "traceroute", "ICMP echo probes", "--icmp"),
        alias("-U", "traceroute", "UDP probes", "--udp"),
        preset("-T", "traceroute", "TCP SYN probes (port 80, or -p)", ("--tcp", 80)),
        missing("-M", "traceroute", "probe method by name", "use --icmp, --udp or --tcp PORT",
                takes_value=True),
        missing("-P", "traceroute", "IP protocol of the probes", "use --icmp, --udp or --tcp PORT",
                takes_value=True),
        missing("-F", "traceroute", "do not fragment", "see --pmtu (DF probes that find the path MTU)"),
        alias("--mtu", "traceroute", "discover the path MTU", "--pmtu"),
        missing("-A", "traceroute", "AS path lookups", "see whois(1) for an address"),
        missing("-e", "traceroute", "ICMP extensions (MPLS)", "not available"),
        missing("-t", "traceroute", "type of service", "probes use the default TOS", takes_value=True),
        missing("-l", "traceroute", "IPv6 flow label", "not available", takes_value=True),
        missing("-g", "traceroute", "source routing gateway", "not available", takes_value=True),
        missing("-r", "traceroute", "bypass the routing tables", "see -i"),
        missing("-z", "traceroute", "pause between probes", "see -N (probes in flight)", takes_value=True),
        missing("-V", "traceroute", "version", "see pysock --version"),
    ]

def ping() -> list:
    return [
        *[same(f, "ping", m) for f, m in (
            ("-c", "count"), ("-i", "interval"), ("-W", "reply timeout"), ("-w", "deadline"),
            ("-s", "data size"), ("-t", "TTL"), ("-q", "statistics only"), ("-f", "flood"),
            ("-I", "interface or source address"), ("-4", "IPv4"), ("-6", "IPv6"),
            ("-p", "fill pattern"), ("-D", "time stamps"), ("-n", "numeric output"))],
        missing("-a", "ping", "audible ping", "not available"),
        missing("-A", "ping", "adaptive interval", "see -i"),
        missing("-b", "ping", "ping a broadcast address", "pysock pings every host of a block: "
                "pysock ping 10.0.0.0/24"),
        missing("-B", "ping", "keep the source address", "see -I ADDR"),
        missing("-l", "ping", "send N probes at once", "see -i 0 and -f", takes_value=True),
        missing("-L", "ping", "no multicast loopback", "not available"),
        missing("-m", "ping", "mark probes", "not available", takes_value=True),
        missing("-M", "ping", "path MTU discovery hint", "not available", takes_value=True),
        missing("-O", "ping", "report outstanding replies", "every missing reply is in the statistics"),
        missing("-r", "ping", "bypass the routing tables", "see -I IFACE"),
        missing("-R", "ping", "record route", "see pysock trace"),
        missing("-S", "ping", "socket send buffer", "not available", takes_value=True),
        missing("-T", "ping", "IP time stamps", "see -D", takes_value=True),
        missing("-U", "ping", "user-to-user latency", "see -D"),
        missing("-v", "ping", "verbose output", "every reply is already shown"),
        missing("-V", "ping", "version", "see pysock --version"),
        missing("-Q", "ping", "type of service", "not available", takes_value=True),
        missing("-e", "ping", "ICMP identifier", "not available", takes_value=True),
        missing("-H", "ping", "force names", "names are shown unless -n"),
        missing("-d", "ping", "SO_DEBUG on the socket", "see pysock --debug"),
        missing("-F", "ping", "IPv6 flow label", "not available", takes_value=True),
        missing("-N", "ping", "IPv6 node information queries", "not available", takes_value=True),
        missing("-g", "fping", "a range of targets", "pass the block: pysock ping 10.0.0.0/24",
                takes_value=True),
        missing("-C", "fping", "per-probe results per host", "see --json", takes_value=True),
    ]


def _nc_common(command: str) -> list:
    """Flags nc, ncat and socat users bring to every byte-moving command."""
    if command == "unix":  # -t is --type; a path needs no name resolution
        own = [preset("-n", "nc", "no name resolution", note="paths are never resolved")]
    else:
        own = [missing("-t", "nc", "telnet negotiation", "not available"),
               same("-n", "nc", "no name resolution")]
    return [
        *own,
        same("-v", "nc", "verbose"),
        same("-q", "nc", "quit SECS after end of input"),
        same("-d", "nc", "do not read stdin"),
        same("--send-only", "ncat", "only send"),
        same("--recv-only", "ncat", "only receive"),
        same("-i", "ncat", "idle timeout (nc's -i, a delay between lines, is not available)"),
        alias("-C", "nc", "CRLF line endings", "--crlf"),
        alias("--hex-dump", "ncat", "hex dump of the traffic to FILE", "--hexdump"),
        missing("-D", "nc", "socket debugging", "see pysock --debug"),
        missing("-o", "ncat", "copy of the traffic to FILE", "see --hexdump FILE", takes_value=True),
    ]


def _nc_tcp(command: str) -> list:
    return [
        same("-4", "nc", "IPv4"),
        same("-6", "nc", "IPv6"),
        same("--no-shutdown", "ncat", "never send FIN"),
        same("--ssl", "ncat", "TLS"),
        preset("-N", "nc", "send FIN at end of input", note=_NO_FIN),
        alias("--ssl-cert", "ncat", "certificate file", "--cert"),
        alias("--ssl-key", "ncat", "key file", "--key"),
        alias("--ssl-alpn", "ncat", "ALPN protocols", "--alpn"),
        missing("-T", "nc", "type of service", "see --sockopt tos=N", takes_value=True),
        missing("-I", "nc", "receive buffer size", "see --sockopt rcvbuf=N", takes_value=True),
        missing("-O", "nc", "send buffer size", "see --sockopt sndbuf=N", takes_value=True),
        missing("-M", "nc", "outgoing TTL", "see --sockopt ttl=N", takes_value=True),
        missing("-S", "nc", "TCP MD5 signatures", "not available"),
        missing("-u", "nc", "UDP", "use pysock udp" + (" -l" if command == "listen" else "")),
        missing("-U", "nc", "Unix sockets", "use pysock unix" + (" -l" if command == "listen" else "")),
    ]


def connect() -> list:
    return [
        *_nc_common("connect"), *_nc_tcp("connect"),
        same("-w", "nc", "connect timeout"),
        same("-s", "nc", "source address"),
        same("-p", "nc", "source port"),
        same("-z", "nc", "only check which ports accept"),
        same("--proxy", "ncat", "proxy address"),
        same("--proxy-type", "ncat", "proxy protocol"),
        same("--proxy-auth", "ncat", "proxy credentials"),
        alias("-x", "nc", "proxy address", "--proxy"),
        alias("-X", "nc", "proxy protocol", "--proxy-type", _4="socks4", _5="socks5", connect="http"),
        alias("--ssl-trustfile", "ncat", "CA certificates to verify against", "--cafile"),
        alias("--ssl-servername", "ncat", "server name to ask for (SNI)", "--sni"),
        missing("-P", "nc", "proxy user name", "see --proxy-auth USER:PASS", takes_value=True),
        missing("-e", "ncat", "run a program on the connection",
                "serve one with pysock listen --exec", takes_value=True),
        missing("-c", "ncat", "run a shell command on the connection",
                "serve one with pysock listen --sh-exec", takes_value=True),
        missing("-l", "nc", "listen", "use pysock listen"),
        missing("-k", "nc", "keep listening", "use pysock listen -k"),
        missing("-r", "nc", "ports in random order", "ports are tried in the order given"),
        missing("-b", "nc", "broadcast", "see pysock udp --broadcast"),
        missing("-F", "nc", "pass the socket to stdout", "see pysock unix --send-fd"),
    ]

def listen() -> list:
    return [
        *_nc_common("listen"), *_nc_tcp("listen"),
        same("-k", "nc", "keep accepting"),
        same("-p", "nc", "local port"),
        same("--max-conns", "ncat", "clients at once"),
        same("--allow", "ncat", "allowed peers"),
        same("--deny", "ncat", "denied peers"),
        same("--allowfile", "ncat", "allowed peers from a file"),
        same("--denyfile", "ncat", "denied peers from a file"),
        same("--broker", "ncat", "connection brokering"),
        same("--chat", "ncat", "chat mode"),
        same("--exec", "ncat", "serve a program"),
        same("--sh-exec", "ncat", "serve a shell command"),
        preset("-l", "nc", "listen", note="what pysock listen always does"),
        alias("-m", "ncat", "clients at once", "--max-conns"),
        alias("-e", "ncat", "serve a program", "--exec"),
        alias("-c", "ncat", "serve a shell command", "--sh-exec"),
        missing("-z", "nc", "only check ports", "see pysock connect -z"),
    ]

def udp() -> list:
    return [
        *_nc_common("udp"),
        same("-l", "nc", "listen"),
        same("-k", "nc", "keep receiving"),
        same("-p", "nc", "local port"),
        same("-s", "nc", "source address"),
        same("-w", "nc", "timeout"),
        same("-4", "nc", "IPv4"),
        same("-6", "nc", "IPv6"),
        preset("-u", "nc", "UDP", note="what pysock udp always does"),
        alias("-b", "nc", "allow broadcast", "--broadcast"),
        alias("-M", "nc", "outgoing TTL", "--ttl"),
        missing("-z", "nc", "check whether a port answers", "see pysock scan -u"),
        missing("-U", "nc", "Unix sockets", "use pysock unix -u"),
        missing("-e", "ncat", "run a program per datagram", "see --echo", takes_value=True),
        missing("-x", "nc", "through a proxy", "UDP goes direct", takes_value=True),
        missing("-T", "nc", "type of service", "see --sockopt tos=N", takes_value=True),
        missing("-I", "nc", "receive buffer size", "see --sockopt rcvbuf=N", takes_value=True),
        missing("-O", "nc", "send buffer size", "see --sockopt sndbuf=N", takes_value=True),
    ]

def unix() -> list:
    return [
        *_nc_common("unix"),
        same("-l", "nc", "listen"),
        same("-k", "nc", "keep accepting"),
        same("-u", "nc", "datagram socket"),
        same("-w", "nc", "timeout"),
        same("--no-shutdown", "ncat", "never send FIN"),
        same("--max-conns", "ncat", "clients at once"),
        same("--broker", "ncat", "connection brokering"),
        same("--chat", "ncat", "chat mode"),
        same("--exec", "ncat", "serve a program"),
        same("--sh-exec", "ncat", "serve a shell command"),
        same("--ssl", "ncat", "TLS"),
        preset("-U", "nc", "Unix sockets", note="what pysock unix always does"),
        preset("-N", "nc", "send FIN at end of input", note=_NO_FIN),
        alias("-m", "ncat", "clients at once", "--max-conns"),
        alias("-e", "ncat", "serve a program", "--exec"),
        alias("-c", "ncat", "serve a shell command", "--sh-exec"),
        missing("-z", "nc", "check whether a socket accepts", "see pysock inspect -x --path PATH"),
        missing("-F", "nc", "pass the socket to stdout", "see --send-fd FILE"),
        missing("-s", "nc", "bind the client to a path", "not available", takes_value=True),
    ]

_SS_KINDS = "pysock lists TCP, UDP, raw, Unix, netlink and packet sockets"

INSPECT = [
    same("-t", "ss", "TCP sockets"),
    same("-u", "ss", "UDP sockets"),
    same("-w", "ss", "raw sockets"),
    same("-x", "ss", "Unix sockets"),
    same("-l", "ss", "listening sockets"),
    same("-a", "ss", "sockets in every state"),
    same("-n", "ss", "port numbers, not service names"),
    same("-r", "ss", "resolve host names"),
    same("-e", "ss", "extended socket information"),
    same("-4", "ss", "IPv4 only"),
    same("-6", "ss", "IPv6 only"),
    same("-K", "ss", "kill (destroy) the selected sockets"),
    same("-H", "ss", "no header line"),
    alias("-s", "ss", "summary statistics", "--summary"),
    alias("-i", "ss", "internal TCP information", "-e"),
    alias("-m", "ss", "socket memory", "-e"),
    alias("-o", "ss", "timer information", "-e"),
    preset("-p", "ss", "the processes using each socket",
           note="pysock always shows the processes; accepted so -tlnp and -tanp work"),
    preset("-O", "ss", "one line per socket", note="pysock's rows are always one line"),
    missing("-N", "ss", "switch to a network namespace",
            "run it there: ip netns exec NAME pysock inspect", takes_value=True),
    missing("-E", "ss", "print sockets as they are made and destroyed",
            "see --watch (new, changed and gone sockets)"),
    missing("-b", "ss", "BPF socket filters", "pysock does not show socket filters"),
    missing("-Z", "ss", "SELinux process context", "pysock does not show security contexts"),
    missing("-z", "ss", "SELinux socket context", "pysock does not show security contexts"),
    missing("-T", "ss", "the threads using each socket",
            "pysock shows processes; see --by-process for their thread counts"),
    missing("-M", "ss", "MPTCP sockets", _SS_KINDS),
    missing("-S", "ss", "SCTP sockets", _SS_KINDS),
    missing("-d", "ss", "DCCP sockets", _SS_KINDS),
    same("-0", "ss", "packet sockets"),
    same("-A", "ss", "socket tables to list (all, inet, tcp, udp, raw, unix, packet, netlink)"),
    same("-f", "ss", "address family (inet, inet6, unix, link, netlink)"),
    missing("-B", "ss", "bound but inactive sockets", "see -a"),
    missing("-D", "ss", "dump the raw netlink replies to a file", "see --json > FILE",
            takes_value=True),
    missing("-F", "ss", "read the filter expression from a file",
            "give the expression after the options: pysock inspect $(cat FILE)",
            takes_value=True),
]

# built on use: a command builds only its own table
TABLES = {"inspect": lambda: INSPECT, "scan": scan, "trace": trace, "ping": ping,
          "connect": connect, "listen": listen, "udp": udp, "unix": unix}
