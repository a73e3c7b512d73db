"""``python -m evalsuite`` (also what ``torchrun -m evalsuite`` runs)."""

from .cli import main

raise SystemExit(main())
