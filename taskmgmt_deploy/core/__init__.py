"""How the walk works: the engine reads, plans, applies, checks and destroys resources in
dependency order, records every change in the manifest, and holds the environment's lock.

It knows nothing of boto3, rich or typer: steps do the AWS work, a Reporter is told what happens.
"""
