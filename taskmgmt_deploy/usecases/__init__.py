"""What each command does, between the command line and the core: `factory` wires settings to
clients, steps, manifest, lock and engine; the other modules are the use cases that are more than
one engine call (deploy, rebuild, migrate, smoke, invoke, serve, outputs)."""
