"""Hostile: opens a TCP connection to a listener of the test on 127.0.0.1 (and nowhere else). Reports
the outcome ("NET ..."). Expect: blocked, 0 points."""
# %%
import socket

PORT = int("__PORT__")
try:
    s = socket.create_connection(("127.0.0.1", PORT), timeout=1.0)
    s.sendall(b"stolen")
    s.close()
    outcome = "connected"
except OSError as e:
    outcome = f"blocked ({type(e).__name__})"
raise RuntimeError(f"NET {outcome}")
