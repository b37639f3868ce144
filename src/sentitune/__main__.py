"""`python -m sentitune` (also what `torchrun -m sentitune train ...` runs)."""

from .cli import main

main()
