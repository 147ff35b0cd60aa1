"""pysock: one tool for looking at and talking through sockets on Linux."""

__version__ = "0.1.0"
