"""What the stack is: its configuration, every resource as data (the blueprint), the dashboard,
and the DSQL region sets. Pure: no AWS call, no I/O beyond reading `.env`."""
