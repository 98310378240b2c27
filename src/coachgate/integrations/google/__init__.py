"""Google: a thin OAuth 2.0 and Meet REST v2 client (``client``) and a stateful local
emulator of both (``emulator``). Knows nothing of coachgate's domain."""
