"""A small Starlette service spread over several modules, to show reloading at work."""
