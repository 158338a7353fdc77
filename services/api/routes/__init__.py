"""API routes, one module per area; each is thin and calls the store through its interface."""
