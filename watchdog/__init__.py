"""The slawatch watchdog: ingest, store, SLA evaluation, alerting, reports and its command-line tool."""
