"""/sync: the notifier that wakes long-polls and the builder of sync responses."""
