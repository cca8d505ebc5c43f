"""`python -m tasks.problems`: load and check problem sets (tasks/problems/cli.py)."""

from tasks.problems.cli import main

if __name__ == "__main__":
    main()
