"""`python -m assft` (what `torchrun -m assft ...` runs): the same console entry point as `assft`."""

from assft.cli.app import main

if __name__ == "__main__":
    main()
