"""RQ adapter: the job queue the webhook and the recovery sweep hand scopes to."""
