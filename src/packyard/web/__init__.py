"""HTTP: the Starlette app, devpi's JSON API, the simple API, files and pages."""
