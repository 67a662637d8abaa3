# Copied by `make setup` into .venv/etc/ipython/, where the kernels of that environment (the
# papermill notebook's, the book's) read it. They log errors only: a notebook run with papermill
# from a terminal then shows its own progress and errors, without ipykernel's start-up warning
# about its connection to papermill on this machine being unencrypted.
c = get_config()  # noqa: F821 (IPython's config loader provides it)
c.IPKernelApp.log_level = "ERROR"
