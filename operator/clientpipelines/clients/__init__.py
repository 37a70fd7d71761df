"""One client module per external system, with typed payloads and one error type each.

Every client raises `ServiceUnavailable` when its system cannot be reached (the
caller retries with backoff and reports a condition) and a system-specific error
for a refusal (bad request, conflict), which retrying does not fix.
"""
