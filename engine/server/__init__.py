"""xmodal serve: the HTTP API and the search page."""
