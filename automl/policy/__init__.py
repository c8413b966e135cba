"""The pure policy decision: sweep or plain training, and why (no Ray, no MLflow)."""
