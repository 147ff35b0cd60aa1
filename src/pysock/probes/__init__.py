"""Packet-level work: scan, ping, trace. scapy is imported inside functions only."""
