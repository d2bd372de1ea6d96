"""Runs the command line as `python -m charter.cli`."""

from charter.cli import main

if __name__ == "__main__":
    main()
