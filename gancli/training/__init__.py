"""Training: the one loop, the objectives it runs, and the state it saves."""
