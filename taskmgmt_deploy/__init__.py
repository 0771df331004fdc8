"""taskmgmt: provision, check and remove the two-region task-management backend.

    cli/                    what the CLI shows: parse flags, call a use case, render (cli/console.py)
    usecases/               what each command does; usecases/factory.py wires the lines below together
    emulator/ sandbox/      how the emulator differs from moto, and the local sandbox that runs it
    steps/ aws/ database/   how AWS is called: one Step class per resource kind, one maker of clients
    core/ stack/            how the walk works (no boto3, rich or typer), and what the stack is (data)

A line imports only from the lines below it (and from its own); errors.py and assets.py serve all.
"""

__version__ = "0.1.0"
