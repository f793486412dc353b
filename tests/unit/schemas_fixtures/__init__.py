"""Sample events, strategies and golden JSON forms for the schemas tests."""
