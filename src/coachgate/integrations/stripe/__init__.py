"""Stripe: the client is the official ``stripe`` SDK (used by ``billing.gateways.stripe``);
beside it sits a stateful local fake (``fake``) for tests and the demo. Knows nothing of
coachgate's domain."""
