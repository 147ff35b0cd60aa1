"""The thin shared socket layer: addresses, endpoints, the relay."""
