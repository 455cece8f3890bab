"""Access tokens outside the web layer: the Redis copy of token generations and the activity
marks, shared by the API, the tasks and any other process that checks a token."""
