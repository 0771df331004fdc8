"""taskmgmt: provision, check and remove the two-region task-management backend."""

__version__ = "0.1.0"
