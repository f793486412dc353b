"""NetSuite's side of the CSV contract, shared by `reconcile` and the simulator: how its
scheduled imports read and validate a file, and the book of what they imported."""
