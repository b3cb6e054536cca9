"""`mlfort demo`: (being written)."""


def demo() -> None:
    """(being written)"""
