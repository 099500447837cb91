"""Framework-level helpers shared by the apps (HTTP limits, egress, logging, task runner)."""
