"""`python -m sentitune` (also what `torchrun -m sentitune train ...` runs)."""

from .app.cli import main

main()
