"""The client library: talks HTTP to a packyard (or devpi) server, never imports server code."""
