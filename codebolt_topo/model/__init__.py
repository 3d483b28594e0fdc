"""The topology file as data: pydantic models, the loader, and the state file's schema."""

__all__: list[str] = []
