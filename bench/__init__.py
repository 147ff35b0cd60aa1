"""pysock's benchmarks: every claim measured side by side with the peer tools."""
