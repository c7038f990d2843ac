"""Operating Replaybook: structured logs (`logs`), traces (`tracing`) and the hook the
worker wraps each job in (`context.job_scope`)."""
