"""Runtime conventions: seeding, configs, logging, signals, environment."""
