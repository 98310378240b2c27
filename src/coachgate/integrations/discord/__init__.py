"""Discord: a thin REST client (``client``), the permission algorithm (``permissions``) and
a stateful local emulator (``emulator``). Knows nothing of coachgate's domain."""
