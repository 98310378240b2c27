"""Zoom: a thin REST and OAuth client (``client``), webhook signatures and dedupe keys
(``webhooks``, pure) and a stateful local emulator (``emulator``). Knows nothing of
coachgate's domain."""
