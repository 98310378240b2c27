"""The admin console (/ops/): statistics, the failures inbox, approvals, settings."""
