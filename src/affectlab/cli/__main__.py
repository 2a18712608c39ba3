"""``python -m affectlab.cli``."""

from affectlab.cli import main

if __name__ == "__main__":
    main()
