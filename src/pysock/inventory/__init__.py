"""Socket inspection: where sockets are listed, who owns them, and filtering."""
