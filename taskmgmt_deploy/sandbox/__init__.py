"""The sandbox: the whole system on one machine, no AWS account.

An emulator process (moto's server, made AWS-like by the fidelity layer, running the
deployed function's code for real) and an embedded PostgreSQL standing in for both DSQL
clusters. Every command takes --sandbox and then runs the same code path as against AWS.
"""
