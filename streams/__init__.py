"""variance-sync."""
