"""What a scan is asked to do and what it finds, port by port."""

from __future__ import annotations

from dataclasses import dataclass, field

OPEN = "open"
CLOSED = "closed"
FILTERED = "filtered"
OPEN_FILTERED = "open|filtered"
STATES = (OPEN, CLOSED, FILTERED, OPEN_FILTERED)


@dataclass(frozen=True)
class Target:
    """One host to scan: what the user typed and the address it resolved to."""

    name: str
    family: int
    addr: str
    from_cidr: bool = False

    @property
    def label(self) -> str:
        return self.addr if self.name == self.addr else f"{self.name} ({self.addr})"


@dataclass(slots=True)
class Verdict:
    """One port's answer: state, why (nmap's --reason words), and the round trip."""

    state: str
    reason: str
    rtt: float | None = None  # seconds, for answered probes
    banner: str | None = None


@dataclass(frozen=True)
class Timing:
    """How hard and how patiently to probe."""

    concurrency: int | None = None  # probes in flight; None: the engine's default
    timeout: float | None = None  # per-probe ceiling; None: adaptive from 1 s
    retries: int = 1
    rate: float | None = None  # probes per second, a ceiling
    source_port: int | None = None


@dataclass
class HostResult:
    target: Target
    verdicts: dict[str, dict[int, Verdict]] = field(default_factory=dict)  # proto -> port -> Verdict
    seconds: float = 0.0
    up: bool = True
    note: str = ""  # why a host was not scanned
    local: bool = False  # the target is this machine
    labels: dict = field(default_factory=dict)  # (proto, port) -> labels.Label of the owner

    def items(self):
        """((proto, port), Verdict) for every port probed."""
        for proto, ports in self.verdicts.items():
            for port, verdict in ports.items():
                yield (proto, port), verdict

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for ports in self.verdicts.values():
            for verdict in ports.values():
                counts[verdict.state] += 1
        return counts
