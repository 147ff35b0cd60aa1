"""Which peer flags each command accepts, maps or explains (see cli/peerflags.py),
one function per command.
The man page's PEER FLAGS section is this table; tests hold every row to what
the command does."""

from __future__ import annotations

from pysock.cli.peerflags import alias, missing, preset, same

_STDOUT = "plain output piped is tab-separated and --json gives JSON Lines: redirect stdout"
_NO_FIN = "pysock sends FIN at end of input by default (--no-shutdown never does)"


def _same(peer: str, rows) -> list:
    """(flag, meaning) rows of flags that mean the same in pysock as in peer."""
    return [same(flag, peer, meaning) for flag, meaning in rows]


def _missing(peer: str, rows) -> list:
    """(flag, meaning, what to do instead[, takes a value]) rows pysock lacks."""
    return [missing(flag, peer, meaning, instead, *takes_value)
            for flag, meaning, instead, *takes_value in rows]


def scan() -> list:
    return [
        *_same("nmap", [
            ("-p", "ports to scan"),
            ("-Pn", "skip host discovery"),
            ("-n", "no name resolution"),
            ("-4", "IPv4"),
            ("-6", "IPv6"),
            ("--open", "show only open ports"),
            ("--reason", "why each state was chosen"),
            ("-g", "source port"),
            ("--source-port", "source port"),
            ("-v", "more detail"),
        ]),
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
        *_missing("nmap", [
            ("-sV", "service version detection", "see --banner (what open ports say first)"),
            ("-O", "OS detection", "see --banner"),
            ("-A", "OS and version detection, scripts and traceroute",
             "see --banner and pysock trace"),
            ("-sC", "default scripts", "see --banner"),
            ("--script", "NSE scripts", "see --banner", True),
            ("-sn", "host discovery without a port scan", "see pysock ping 10.0.0.0/24"),
            ("-sA", "ACK scan", "see --syn"),
            ("-sF", "FIN scan", "see --syn"),
            ("-sN", "NULL scan", "see --syn"),
            ("-sX", "Xmas scan", "see --syn"),
            ("-sW", "window scan", "see --syn"),
            ("-sM", "Maimon scan", "see --syn"),
            ("-sO", "IP protocol scan", "see -t and -u"),
            ("-PE", "ICMP echo host discovery",
             "hosts of a block are checked with an echo or TCP 80/443; -Pn skips the check"),
            ("-PS", "TCP SYN host discovery",
             "hosts of a block are checked with an echo or TCP 80/443; -Pn skips the check"),
            ("-oN", "normal output to a file", _STDOUT, True),
            ("-oG", "grepable output to a file", _STDOUT, True),
            ("-oX", "XML output to a file", _STDOUT, True),
            ("-oA", "output in three formats", _STDOUT, True),
            ("-iL", "targets from a file", "pass them as arguments: $(cat FILE)", True),
            ("--exclude", "hosts to skip", "list the targets to scan", True),
            ("-e", "the interface to send from", "probes follow the routing table", True),
            ("--min-rate", "at least N probes a second", "--rate sets a ceiling only", True),
            ("--host-timeout", "give up on a slow host", "see -w and --retries", True),
            ("--traceroute", "the path to each host", "see pysock trace"),
            ("-f", "fragment packets", "see --syn"),
            ("-D", "decoys", "not available", True),
            ("-d", "debugging output", "see pysock --debug and --reason"),
        ]),
    ]

def trace() -> list:
    return [
        *_same("traceroute", [
            ("-n", "no name resolution"),
            ("-q", "probes per hop"),
            ("-m", "the largest TTL"),
            ("-f", "the first TTL"),
            ("-w", "seconds to wait for an answer"),
            ("-N", "probes in flight"),
            ("-s", "source address"),
            ("-i", "interface"),
            ("-p", "destination port (UDP, or TCP with -T)"),
            ("-4", "IPv4"),
            ("-6", "IPv6"),
        ]),
        same("-c", "mtr", "rounds, then a summary per hop"),
        alias("--report-cycles", "mtr", "rounds, then a summary per hop", "--repeat"),
        alias("-I", "traceroute", "ICMP echo probes", "--icmp"),
        alias("-U", "traceroute", "UDP probes", "--udp"),
        preset("-T", "traceroute", "TCP SYN probes (port 80, or -p)", ("--tcp", 80)),
        *_missing("traceroute", [
            ("-M", "probe method by name", "use --icmp, --udp or --tcp PORT", True),
            ("-P", "IP protocol of the probes", "use --icmp, --udp or --tcp PORT", True),
            ("-F", "do not fragment", "see --pmtu (DF probes that find the path MTU)"),
        ]),
        alias("--mtu", "traceroute", "discover the path MTU", "--pmtu"),
        *_missing("traceroute", [
            ("-A", "AS path lookups", "see whois(1) for an address"),
            ("-e", "ICMP extensions (MPLS)", "not available"),
            ("-t", "type of service", "probes use the default TOS", True),
            ("-l", "IPv6 flow label", "not available", True),
            ("-g", "source routing gateway", "not available", True),
            ("-r", "bypass the routing tables", "see -i"),
            ("-z", "pause between probes", "see -N (probes in flight)", True),
            ("-V", "version", "see pysock --version"),
        ]),
    ]

def ping() -> list:
    return [
        *_same("ping", [
            ("-c", "count"), ("-i", "interval"), ("-W", "reply timeout"), ("-w", "deadline"),
            ("-s", "data size"), ("-t", "TTL"), ("-q", "statistics only"), ("-f", "flood"),
            ("-I", "interface or source address"), ("-4", "IPv4"), ("-6", "IPv6"),
            ("-p", "fill pattern"), ("-D", "time stamps"), ("-n", "numeric output")]),
        *_missing("ping", [
            ("-a", "audible ping", "not available"),
            ("-A", "adaptive interval", "see -i"),
            ("-b", "ping a broadcast address",
             "pysock pings every host of a block: pysock ping 10.0.0.0/24"),
            ("-B", "keep the source address", "see -I ADDR"),
            ("-l", "send N probes at once", "see -i 0 and -f", True),
            ("-L", "no multicast loopback", "not available"),
            ("-m", "mark probes", "not available", True),
            ("-M", "path MTU discovery hint", "not available", True),
            ("-O", "report outstanding replies", "every missing reply is in the statistics"),
            ("-r", "bypass the routing tables", "see -I IFACE"),
            ("-R", "record route", "see pysock trace"),
            ("-S", "socket send buffer", "not available", True),
            ("-T", "IP time stamps", "see -D", True),
            ("-U", "user-to-user latency", "see -D"),
            ("-v", "verbose output", "every reply is already shown"),
            ("-V", "version", "see pysock --version"),
            ("-Q", "type of service", "not available", True),
            ("-e", "ICMP identifier", "not available", True),
            ("-H", "force names", "names are shown unless -n"),
            ("-d", "SO_DEBUG on the socket", "see pysock --debug"),
            ("-F", "IPv6 flow label", "not available", True),
            ("-N", "IPv6 node information queries", "not available", True),
        ]),
        *_missing("fping", [
            ("-g", "a range of targets", "pass the block: pysock ping 10.0.0.0/24", True),
            ("-C", "per-probe results per host", "see --json", True),
        ]),
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
        *_same("nc", [
            ("-v", "verbose"),
            ("-q", "quit SECS after end of input"),
            ("-d", "do not read stdin"),
        ]),
        *_same("ncat", [
            ("--send-only", "only send"),
            ("--recv-only", "only receive"),
            ("-i", "idle timeout (nc's -i, a delay between lines, is not available)"),
        ]),
        alias("-C", "nc", "CRLF line endings", "--crlf"),
        alias("--hex-dump", "ncat", "hex dump of the traffic to FILE", "--hexdump"),
        missing("-D", "nc", "socket debugging", "see pysock --debug"),
        missing("-o", "ncat", "copy of the traffic to FILE", "see --hexdump FILE", takes_value=True),
    ]


def _nc_tcp(command: str) -> list:
    return [
        *_same("nc", [
            ("-4", "IPv4"),
            ("-6", "IPv6"),
        ]),
        *_same("ncat", [
            ("--no-shutdown", "never send FIN"),
            ("--ssl", "TLS"),
        ]),
        preset("-N", "nc", "send FIN at end of input", note=_NO_FIN),
        alias("--ssl-cert", "ncat", "certificate file", "--cert"),
        alias("--ssl-key", "ncat", "key file", "--key"),
        alias("--ssl-alpn", "ncat", "ALPN protocols", "--alpn"),
        *_missing("nc", [
            ("-T", "type of service", "see --sockopt tos=N", True),
            ("-I", "receive buffer size", "see --sockopt rcvbuf=N", True),
            ("-O", "send buffer size", "see --sockopt sndbuf=N", True),
            ("-M", "outgoing TTL", "see --sockopt ttl=N", True),
            ("-S", "TCP MD5 signatures", "not available"),
            ("-u", "UDP", "use pysock udp" + (" -l" if command == "listen" else "")),
            ("-U", "Unix sockets", "use pysock unix" + (" -l" if command == "listen" else "")),
        ]),
    ]


def connect() -> list:
    return [
        *_nc_common("connect"), *_nc_tcp("connect"),
        *_same("nc", [
            ("-w", "connect timeout"),
            ("-s", "source address"),
            ("-p", "source port"),
            ("-z", "only check which ports accept"),
        ]),
        *_same("ncat", [
            ("--proxy", "proxy address"),
            ("--proxy-type", "proxy protocol"),
            ("--proxy-auth", "proxy credentials"),
        ]),
        alias("-x", "nc", "proxy address", "--proxy"),
        alias("-X", "nc", "proxy protocol", "--proxy-type", _4="socks4", _5="socks5", connect="http"),
        alias("--ssl-trustfile", "ncat", "CA certificates to verify against", "--cafile"),
        alias("--ssl-servername", "ncat", "server name to ask for (SNI)", "--sni"),
        missing("-P", "nc", "proxy user name", "see --proxy-auth USER:PASS", takes_value=True),
        *_missing("ncat", [
            ("-e", "run a program on the connection", "serve one with pysock listen --exec", True),
            ("-c", "run a shell command on the connection",
             "serve one with pysock listen --sh-exec", True),
        ]),
        *_missing("nc", [
            ("-l", "listen", "use pysock listen"),
            ("-k", "keep listening", "use pysock listen -k"),
            ("-r", "ports in random order", "ports are tried in the order given"),
            ("-b", "broadcast", "see pysock udp --broadcast"),
            ("-F", "pass the socket to stdout", "see pysock unix --send-fd"),
        ]),
    ]

def listen() -> list:
    return [
        *_nc_common("listen"), *_nc_tcp("listen"),
        *_same("nc", [
            ("-k", "keep accepting"),
            ("-p", "local port"),
        ]),
        *_same("ncat", [
            ("--max-conns", "clients at once"),
            ("--allow", "allowed peers"),
            ("--deny", "denied peers"),
            ("--allowfile", "allowed peers from a file"),
            ("--denyfile", "denied peers from a file"),
            ("--broker", "connection brokering"),
            ("--chat", "chat mode"),
            ("--exec", "serve a program"),
            ("--sh-exec", "serve a shell command"),
        ]),
        preset("-l", "nc", "listen", note="what pysock listen always does"),
        alias("-m", "ncat", "clients at once", "--max-conns"),
        alias("-e", "ncat", "serve a program", "--exec"),
        alias("-c", "ncat", "serve a shell command", "--sh-exec"),
        missing("-z", "nc", "only check ports", "see pysock connect -z"),
    ]

def udp() -> list:
    return [
        *_nc_common("udp"),
        *_same("nc", [
            ("-l", "listen"),
            ("-k", "keep receiving"),
            ("-p", "local port"),
            ("-s", "source address"),
            ("-w", "timeout"),
            ("-4", "IPv4"),
            ("-6", "IPv6"),
        ]),
        preset("-u", "nc", "UDP", note="what pysock udp always does"),
        alias("-b", "nc", "allow broadcast", "--broadcast"),
        alias("-M", "nc", "outgoing TTL", "--ttl"),
        *_missing("nc", [
            ("-z", "check whether a port answers", "see pysock scan -u"),
            ("-U", "Unix sockets", "use pysock unix -u"),
        ]),
        missing("-e", "ncat", "run a program per datagram", "see --echo", takes_value=True),
        *_missing("nc", [
            ("-x", "through a proxy", "UDP goes direct", True),
            ("-T", "type of service", "see --sockopt tos=N", True),
            ("-I", "receive buffer size", "see --sockopt rcvbuf=N", True),
            ("-O", "send buffer size", "see --sockopt sndbuf=N", True),
        ]),
    ]

def unix() -> list:
    return [
        *_nc_common("unix"),
        *_same("nc", [
            ("-l", "listen"),
            ("-k", "keep accepting"),
            ("-u", "datagram socket"),
            ("-w", "timeout"),
        ]),
        *_same("ncat", [
            ("--no-shutdown", "never send FIN"),
            ("--max-conns", "clients at once"),
            ("--broker", "connection brokering"),
            ("--chat", "chat mode"),
            ("--exec", "serve a program"),
            ("--sh-exec", "serve a shell command"),
            ("--ssl", "TLS"),
        ]),
        preset("-U", "nc", "Unix sockets", note="what pysock unix always does"),
        preset("-N", "nc", "send FIN at end of input", note=_NO_FIN),
        alias("-m", "ncat", "clients at once", "--max-conns"),
        alias("-e", "ncat", "serve a program", "--exec"),
        alias("-c", "ncat", "serve a shell command", "--sh-exec"),
        *_missing("nc", [
            ("-z", "check whether a socket accepts", "see pysock inspect -x --path PATH"),
            ("-F", "pass the socket to stdout", "see --send-fd FILE"),
            ("-s", "bind the client to a path", "not available", True),
        ]),
    ]

_SS_KINDS = "pysock lists TCP, UDP, raw, Unix, netlink and packet sockets"

INSPECT = [
    *_same("ss", [
        ("-t", "TCP sockets"),
        ("-u", "UDP sockets"),
        ("-w", "raw sockets"),
        ("-x", "Unix sockets"),
        ("-l", "listening sockets"),
        ("-a", "sockets in every state"),
        ("-n", "port numbers, not service names"),
        ("-r", "resolve host names"),
        ("-e", "extended socket information"),
        ("-4", "IPv4 only"),
        ("-6", "IPv6 only"),
        ("-K", "kill (destroy) the selected sockets"),
        ("-H", "no header line"),
    ]),
    alias("-s", "ss", "summary statistics", "--summary"),
    alias("-i", "ss", "internal TCP information", "-e"),
    alias("-m", "ss", "socket memory", "-e"),
    alias("-o", "ss", "timer information", "-e"),
    preset("-p", "ss", "the processes using each socket",
           note="pysock always shows the processes; accepted so -tlnp and -tanp work"),
    preset("-O", "ss", "one line per socket", note="pysock's rows are always one line"),
    *_missing("ss", [
        ("-N", "switch to a network namespace",
         "run it there: ip netns exec NAME pysock inspect", True),
        ("-E", "print sockets as they are made and destroyed",
         "see --watch (new, changed and gone sockets)"),
        ("-b", "BPF socket filters", "pysock does not show socket filters"),
        ("-Z", "SELinux process context", "pysock does not show security contexts"),
        ("-z", "SELinux socket context", "pysock does not show security contexts"),
        ("-T", "the threads using each socket",
         "pysock shows processes; see --by-process for their thread counts"),
        ("-M", "MPTCP sockets", _SS_KINDS),
        ("-S", "SCTP sockets", _SS_KINDS),
        ("-d", "DCCP sockets", _SS_KINDS),
    ]),
    *_same("ss", [
        ("-0", "packet sockets"),
        ("-A", "socket tables to list (all, inet, tcp, udp, raw, unix, packet, netlink)"),
        ("-f", "address family (inet, inet6, unix, link, netlink)"),
    ]),
    *_missing("ss", [
        ("-B", "bound but inactive sockets", "see -a"),
        ("-D", "dump the raw netlink replies to a file", "see --json > FILE", True),
        ("-F", "read the filter expression from a file",
         "give the expression after the options: pysock inspect $(cat FILE)", True),
    ]),
]

# built on use: a command builds only its own table
TABLES = {"inspect": lambda: INSPECT, "scan": scan, "trace": trace, "ping": ping,
          "connect": connect, "listen": listen, "udp": udp, "unix": unix}
