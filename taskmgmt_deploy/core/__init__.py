"""How the walk works: the engine reads, plans, applies, checks and destroys resources in
dependency order through one scheduler, records every change in the manifest, and holds the
environment's lock. step.py is the contract each resource kind (steps/) implements.

It knows nothing of boto3, rich or typer: steps do the AWS work, a Reporter is told what happens.
"""
