"""Model building helpers: the local tiny model used offline by tests and the demo."""
