"""Fairness: model quality and exposure per demographic group, and feedback-loop checks."""
