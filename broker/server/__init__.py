"""The broker process and its HTTP edge in front of the routes: uvicorn hooks, request limits,
the trusted proxy's forwarded address, JSON depth, and how the garbage collector runs."""
