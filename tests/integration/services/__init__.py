"""Small services the end-to-end tests run as real processes."""
