"""Bearer tokens, framework-free: their format, minting and the one check every caller runs.

``tokens`` mints and verifies (``TokenIssuer``, ``TokenVerifier``); ``errors`` holds what a
refused token raises; ``generations`` and ``activity`` are the Redis state the check reads and
marks. The API runs the check once per request (``api.auth.request_token``); any other process
that is handed a token (a socket connect) builds a ``TokenVerifier`` and calls ``verify``.
"""
