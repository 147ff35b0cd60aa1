"""Packet-level work: scan, ping, trace (and mtr, pmtu, portping), capture, perf.
scapy is imported inside the functions that need it, never at module level."""
