"""robwe: ownership watermarks for personalised federated learning (RobWE): head and sliced
representation embedding, malicious-watermark detection.

Not implemented yet: this package is a placeholder and exposes nothing.
"""
