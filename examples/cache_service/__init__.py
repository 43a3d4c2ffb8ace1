"""A JSON item cache whose memory grows, then plateaus under churn; see README.md."""
