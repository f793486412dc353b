"""The worker, the only code that imports Faust: `run.py` prepares the broker and runs
it, `app.py` assembles its parts. Nothing is imported here, so that importing one of its
modules (the console's assets, say) loads no more than that module needs."""
