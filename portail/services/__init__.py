"""Business rules, callable without a request."""
