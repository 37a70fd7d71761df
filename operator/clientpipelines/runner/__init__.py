"""The pipeline runner: one Write-Audit-Publish run of a client's dbt project."""
