"""The reference command-line interface (`skyplan`), built on the public API only."""
