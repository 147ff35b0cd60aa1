"""The port scanner: connect, SYN and UDP engines, their timing, and the pieces
around them (ranked port lists, host up-check, banners, local process labels)."""
