"""The slawatch agent: scheduler, spool, shipper and its command-line tool."""
