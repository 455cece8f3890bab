"""The real-time server process (docs/realtime.md): Socket.IO on uvicorn."""
