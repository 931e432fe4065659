"""``python -m nanoseg`` (also what ``torchrun -m nanoseg`` runs)."""

from nanoseg.cli import main

if __name__ == "__main__":
    main()
