"""`capture -- COMMAND`: run COMMAND and tell its processes (it and every
descendant, also ones started later) from the rest of the machine."""

from __future__ import annotations

import ctypes
import os
import subprocess

from pysock.errors import ExitStatus, PysockError

PR_SET_CHILD_SUBREAPER = 36


def _adopt_orphans() -> None:
    """Make pysock the reaper of COMMAND's orphans: a daemonising child then stays
    under pysock, not init, and still counts as COMMAND's."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class CommandTree:
    """The process COMMAND runs as and its descendants. A pid is judged once, while
    it lives (the attribution calls judge() as it learns a socket's owner), and the
    verdict is kept: a child that exits before its packets are read still counts."""

    def __init__(self, argv: list[str], stdout=None):
        _adopt_orphans()
        try:
            self.proc = subprocess.Popen(argv, stdout=stdout)
        except OSError as exc:
            raise PysockError(f"cannot run '{argv[0]}': {exc.strerror}",
                              ExitStatus.FAILURE) from None
        self.root = self.proc.pid
        # pysock's only children are COMMAND and the orphans it adopts from it
        self.verdicts: dict[int, bool] = {self.root: True}
        self.me = os.getpid()

    def judge(self, pid: int) -> bool:
        known = self.verdicts.get(pid)
        if known is not None:
            return known
        chain, at = [], pid
        verdict = False
        for _ in range(64):  # a process tree is never this deep; bound the walk
            chain.append(at)
            at = _parent(at)
            if at is None or at <= 1:
                break
            if at == self.me:
                verdict = True
                break
            if at in self.verdicts:
                verdict = self.verdicts[at]
                break
        for member in chain:
            self.verdicts[member] = verdict
        return verdict

    def owns(self, packet) -> bool:
        return any(end is not None and self.judge(end[0])
                   for end in (packet.owner, packet.peer_owner))

    def done(self) -> bool:
        return self.proc.poll() is not None

    def stop(self) -> int:
        """COMMAND's exit status, ending it first if the capture ends before it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
