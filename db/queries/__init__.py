"""Named queries: every SELECT the API and tasks need lives here, behind an intention-revealing name."""
