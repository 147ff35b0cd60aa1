"""The namespace fixture itself: hosts that reach each other, and only each other."""

import netns
from conftest import need_tool


def test_two_hosts_ping_each_other(lab):
    need_tool("ping")
    a, b = netns.two_hosts(lab)
    out = a.run("ping", "-c", "2", "-i", "0.2", "-W", "2", b.addr, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 received" in out.stdout
    out6 = a.run("ping", "-6", "-c", "1", "-W", "2", b.addr6, check=False)
    assert out6.returncode == 0, out6.stdout + out6.stderr


def test_chain_forwards_through_the_router(lab):
    need_tool("ping")
    client, router, server = netns.chain(lab)
    out = client.run("ping", "-c", "1", "-W", "2", server.addr, check=False)
    assert out.returncode == 0, out.stdout
    assert "ttl=63" in out.stdout  # one hop decremented the TTL


def test_nft_drop_and_counter(lab):
    need_tool("ping", "nft")
    a, b = netns.two_hosts(lab)
    b.nft("""table inet t {
        counter dropped { }
        chain in {
            type filter hook input priority 0;
            icmp type echo-request counter name dropped drop
        }
    }""")
    out = a.run("ping", "-c", "2", "-i", "0.2", "-W", "1", b.addr, check=False)
    assert out.returncode == 1
    assert b.nft_counter("t", "dropped") == 2


def test_teardown_removes_namespaces(lab):
    import subprocess
    a, _ = netns.two_hosts(lab)
    name = a.name
    lab.close()
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert name not in names
