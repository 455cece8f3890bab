"""Named queries: every SELECT the API and tasks need, behind an intention-revealing name."""
