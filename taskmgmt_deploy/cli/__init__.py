"""The `taskmgmt` command line. It parses, calls the core, and renders through one Console."""

from taskmgmt_deploy.cli.main import main

__all__ = ["main"]
