"""Token counting with no network access, and the price of a request."""
