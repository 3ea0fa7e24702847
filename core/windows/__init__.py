"""What the engine knows about Windows itself: partition roles, type ids and marker files."""
