"""pysock capture: AF_PACKET ring, kernel BPF filters, process attribution, pcapng."""
